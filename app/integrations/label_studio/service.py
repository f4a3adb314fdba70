"""The ML-backend protocol's calls and tbal's Label Studio import, on top of the service's own paths.

``/health`` and ``/setup`` only read a few rows (Label Studio calls them before almost every operation,
with 1 s and 3 s limits): no model is loaded there. Webhooks write what they carry and return; the Train
button starts a round through :func:`app.rounds.service.start_round`, which commits, then enqueues.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import httpx
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import LabelStudioConnection, Project
from app.errors import Conflict, Invalid
from app.integrations.label_studio import credentials, events, raw, votes
from app.integrations.label_studio import repository as repo
from app.integrations.label_studio.client import LabelStudioClient
from app.integrations.label_studio.connections import Linked
from app.integrations.label_studio.label_config import ChoicesControl, labeled_object, matching_control
from app.integrations.label_studio.predictions import load_items, ls_prediction, score_items
from app.integrations.label_studio.purposes import apply_purposes
from app.integrations.label_studio.raw import ClientFactory, RawOutcome, RawTask
from app.integrations.label_studio.schemas import (
    EventRead,
    ImportResult,
    LSAnnotation,
    LSExportTask,
    LSTask,
    PredictRequest,
    SetupRequest,
    StatusRead,
    TaskProblem,
    Webhook,
    WebhookResult,
)
from app.integrations.label_studio.sync import make_client
from app.integrations.label_studio.tasks import Resolved, resolve_tasks
from app.repositories import projects as projects_repo
from app.rounds import repository as rounds_repo
from app.rounds.dispatch import Dispatcher
from app.rounds.liveness import reap_stale_rounds
from app.rounds.service import start_round
from app.services.predict import ArtifactCache
from app.settings import Settings

logger = logging.getLogger(__name__)

MODEL_CLASS = "tbal"
_EXPORT = TypeAdapter(list[LSExportTask])
SHOWN_PROBLEMS = 5


@dataclass(frozen=True)
class Recorded:
    """What recording a batch of annotations did."""

    recorded: int
    cancelled: int
    unusable: int
    written: int
    removed: int
    ties: int


def model_version(session: Session, project: Project) -> str:
    """The latest succeeded round's version (``<project>-r<index>``), ``<project>-untrained`` before."""
    latest = rounds_repo.last_succeeded(session, project.id)
    if latest is None or latest.model_version is None:
        return f"{project.name}-untrained"
    return latest.model_version


def health(linked: Linked) -> dict[str, object]:
    return {"status": "UP", "model_class": MODEL_CLASS, "project": linked.project.name}


def setup(session: Session, linked: Linked, body: SetupRequest, settings: Settings) -> dict[str, str]:
    """Check the label config's Choices against the classes (422 naming the difference), remember the
    control's names and the labeled object's data key (``value="$text"`` -> ``text``), and learn the
    Label Studio project (``project`` is ``"<id>.<created_at>"``) and, when the connection has none, its
    URL and access token (``hostname``, ``access_token``: the project creator's token, stored encrypted):
    what the sync needs. Answers the current model version."""
    control = matching_control(body.schema_, linked.project.classes, "schema")
    row = linked.connection
    if (row.from_name, row.to_name) != (control.from_name, control.to_name):
        row.from_name, row.to_name = control.from_name, control.to_name
    labeled = labeled_object(body.schema_, control.to_name, "schema")
    if labeled is not None and (row.data_key, row.object_tag) != (labeled.data_key, labeled.tag):
        row.data_key, row.object_tag = labeled.data_key, labeled.tag
    ls_project = _ls_project_id(body.project)
    if ls_project is not None and row.ls_project != ls_project:
        row.ls_project = ls_project
    hostname, token = body.hostname or "", body.access_token
    learnable = hostname.startswith(("http://", "https://")) and "@" not in urlparse(hostname).netloc
    if row.ls_url is None and row.ls_token is None and token and learnable:
        row.ls_url = hostname.rstrip("/")
        row.ls_token = credentials.encrypt(settings, token)
    version = model_version(session, linked.project)
    session.commit()
    return {"model_version": version}


def _ls_project_id(value: str | None) -> int | None:
    head = (value or "").split(".", 1)[0]
    return int(head) if head.isdigit() and 0 < int(head) < 2**63 else None


def status(session: Session, project: Project) -> StatusRead:
    """The connection, how many queries are open and tasks linked, and the latest events."""
    from app.integrations.label_studio.connections import read
    from app.repositories import labels as labels_repo

    row = repo.connection(session, project.id)
    return StatusRead(
        connection=read(row) if row is not None else None,
        open_queries=labels_repo.count_open_queries(session, project.id),
        tasks_linked=len(repo.tasks_by_item(session, project.id)),
        last_errors=[EventRead.model_validate(e) for e in repo.latest_events(session, project.id, 20)],
    )


def versions(session: Session, linked: Linked) -> dict[str, list[str]]:
    """The model versions of the project's succeeded rounds, oldest first."""
    found = repo.model_versions(session, linked.project.id)
    return {"versions": found or [model_version(session, linked.project)]}


def control_of(linked: Linked, label_config: str | None) -> ChoicesControl:
    """The Choices control of a request's label config, else the one remembered from ``/setup``."""
    if label_config:
        return matching_control(label_config, linked.project.classes, "label_config")
    row = linked.connection
    if row.from_name and row.to_name:
        return ChoicesControl(row.from_name, row.to_name, tuple(linked.project.classes), multiple=False)
    raise Invalid("label_config", "expected the project's label_config (Label Studio sends it with /predict)")


@dataclass(frozen=True)
class Predicted:
    """``/predict``'s answer and the raw tasks left to make items of in the background."""

    body: dict[str, list[Any]]
    pending: list[RawTask]


def predict_tasks(
    session: Session,
    linked: Linked,
    body: PredictRequest,
    cache: ArtifactCache,
    settings: Settings,
    client: ClientFactory,
) -> Predicted:
    """One entry per task, always, in order (Label Studio drops the whole batch otherwise):

    - a mapped task: the auto-label (marked ``tbal: "auto-label"``) or the latest model's class and score;
    - a task tbal cannot map to an item: an empty result (``{"result": []}``) of the current model version,
      and the task recorded as an event of the connection;
    - before the first model, or for a raw task whose item is still being made (past
      ``label_studio_predict_budget_s``): ``[]``, no prediction, so Label Studio asks again next time.
    """
    project = linked.project
    version = model_version(session, project)
    n = len(body.tasks)
    try:
        control = control_of(linked, body.label_config)
    except Invalid as exc:
        _event(session, project, "predict", exc.status, f"{exc.field}: {exc.reason}")
        return Predicted({"results": [[] for _ in range(n)]}, [])
    deadline = time.monotonic() + settings.label_studio_predict_budget_s
    resolved = _resolve(session, linked, body.tasks, settings, client=client, deadline=deadline)
    if resolved.problems:
        _event(session, project, "predict", 422, _summary(len(body.tasks), resolved.problems, "have no item"))
    results: list[Any] = [[] for _ in range(n)]
    for pos in resolved.problems:
        results[pos] = {"model_version": version, "score": 0.0, "result": []}
    mapped = [(pos, i) for pos, i in enumerate(resolved.item_ids) if i is not None]
    if mapped:
        item_ids = [i for _, i in mapped]
        try:
            scored = score_items(
                session,
                project,
                item_ids,
                load_items(session, project, item_ids),
                cache,
                batch=settings.max_batch_items,
            )
        except Conflict as exc:
            _event(session, project, "predict", exc.status, f"{exc.field}: {exc.reason}")
            return Predicted({"results": results}, resolved.pending)
        for (pos, _), k, score, auto in zip(mapped, scored.labels, scored.scores, scored.auto, strict=True):
            results[pos] = ls_prediction(
                scored.version, project.classes[int(k)], float(score), control, auto=bool(auto)
            )
    return Predicted({"results": results}, resolved.pending)


def _summary(n: int, problems: dict[int, str], what: str) -> str:
    shown = "; ".join(list(problems.values())[:SHOWN_PROBLEMS])
    more = len(problems) - SHOWN_PROBLEMS
    return f"{len(problems)} of {n} tasks {what}: {shown}" + (f" (+{more} more)" if more > 0 else "")


def _event(session: Session, project: Project, source: str, status: int, reason: str) -> None:
    """Log and keep an event (committed with the request's work)."""
    events.logger.warning("label studio %s for project %s: %s %s", source, project.id, status, reason)
    repo.add_event(session, project.id, source, status, reason[: events.MAX_REASON], events.KEEP)
    session.commit()


def create_pending(
    factory: sessionmaker[Session],
    project_id: int,
    tasks: list[tuple[int, dict[str, Any]]],
    settings: Settings,
    transport: httpx.BaseTransport | None = None,
) -> None:
    """Make the items of raw tasks left pending by ``/predict`` or ``TASKS_CREATED`` (in the background,
    no deadline); problems become events."""
    try:
        with factory() as session:
            project = projects_repo.get(session, project_id)
            connection = repo.connection(session, project_id) if project is not None else None
            if project is None or connection is None:
                return
            linked = Linked(project=project, connection=connection)
            factory_ = client_factory(connection, settings, transport)
            lstasks = [LSTask(id=t, data=d) for t, d in tasks]
            resolved = _resolve(session, linked, lstasks, settings, client=factory_, deadline=float("inf"))
            if resolved.problems:
                _event(
                    session,
                    project,
                    "background",
                    422,
                    _summary(len(tasks), resolved.problems, "have no item"),
                )
    except Exception as exc:
        events.record(factory, project_id, "background", 500, f"{type(exc).__name__}: {exc}")


def client_factory(
    connection: LabelStudioConnection, settings: Settings, transport: httpx.BaseTransport | None = None
) -> ClientFactory:
    """A factory of the connection's Label Studio client (None without URL and token), made on first use."""

    def make() -> LabelStudioClient | None:
        return make_client(connection, settings, transport)

    return make


def webhook(
    session: Session, linked: Linked, body: Webhook, dispatcher: Dispatcher, settings: Settings
) -> WebhookResult:
    """Record what a webhook carries (see the module docstring); other actions are acknowledged."""
    action = body.action
    if action in ("ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED"):
        return _annotations(session, linked, action, _pairs(body), settings)
    if action in ("ANNOTATIONS_DELETED", "TASKS_DELETED"):
        if action == "ANNOTATIONS_DELETED":
            ids = [a["id"] for a in body.annotations or [] if isinstance(a.get("id"), int)]
            items = votes.forget(session, linked.project, annotation_ids=ids)
        else:
            items = votes.forget(session, linked.project, task_ids=[t.id for t in body.tasks or []])
        done = votes.aggregate(session, linked.project, items)
        return WebhookResult(
            action=action,
            status="ok",
            labels_written=done.written,
            labels_removed=done.removed,
            ties=done.ties,
        )
    if action == "TASKS_CREATED":
        tasks = body.tasks or []
        # raw tasks: all made in the background (Label Studio waits 1 s for a webhook)
        resolved = _resolve(session, linked, tasks, settings, client=lambda: None, deadline=0.0)
        problems = _problems(tasks, resolved)
        if problems:
            _event(
                session,
                linked.project,
                "webhook",
                422,
                _summary(len(tasks), resolved.problems, "have no item"),
            )
        return WebhookResult(
            action=action,
            status="ok",
            items_created=resolved.created,
            skipped_tasks=problems,
            pending=[t.task_id for t in resolved.pending],
        )
    if action == "START_TRAINING":
        # a dead round (its worker gone) is cleared first, exactly as POST /rounds does
        reaped = reap_stale_rounds(session, settings, project_id=linked.project.id)
        round_ = start_round(session, linked.project, dispatcher)
        return WebhookResult(action=action, status="queued", round_id=round_.id, reaped_rounds=reaped)
    return WebhookResult(action=action, status="ignored")


def _pairs(body: Webhook) -> list[tuple[LSTask, LSAnnotation]]:
    """(task, annotation) pairs of an annotation webhook: one of each, or lists (ANNOTATIONS_CREATED)
    matched through the annotation's ``task`` id."""
    annotations = body.annotation if isinstance(body.annotation, list) else [body.annotation]
    tasks = body.task if isinstance(body.task, list) else [body.task]
    if not annotations or annotations[0] is None or not tasks or tasks[0] is None:
        raise Invalid("annotation", f"{body.action} needs 'annotation' and 'task'")
    by_id = {t.id: t for t in tasks if t is not None}
    pairs: list[tuple[LSTask, LSAnnotation]] = []
    for i, annotation in enumerate(annotations):
        assert annotation is not None
        task = by_id.get(annotation.task) if annotation.task is not None else None
        if task is None and len(by_id) == 1:
            task = next(iter(by_id.values()))
        if task is None:
            raise Invalid(f"annotation.{i}.task", f"no task {annotation.task} in the webhook's 'task'")
        pairs.append((task, annotation))
    return pairs


def read_export(body: list[dict[str, Any]]) -> list[LSExportTask]:
    """The tasks of a Label Studio JSON export (``exportType=JSON``); 422 for anything else."""
    for i, task in enumerate(body):
        if not isinstance(task.get("data"), dict):
            raise Invalid(
                f"{i}.data",
                "expected Label Studio's JSON export (tasks with 'data' and 'annotations'); JSON_MIN and CSV "
                "exports flatten tasks and lose the cancelled flag of annotations: export as JSON",
            )
    try:
        return _EXPORT.validate_python(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise Invalid(where or "body", str(first.get("msg", "invalid export"))) from exc


def import_export(
    session: Session,
    project: Project,
    tasks: list[LSExportTask],
    connection: LabelStudioConnection,
    settings: Settings,
    *,
    from_name: str | None = None,
) -> ImportResult:
    """Import a Label Studio JSON export: its tasks become items (when new), its annotations human labels
    (several annotators -> a soft label; cancelled ones dropped). Annotation ids make it idempotent.
    Task data are read as ``connection`` says (see :func:`connections.settings_of`); ``from_name`` picks
    the Choices control when annotations have several."""
    linked = Linked(project=project, connection=connection)
    resolved = _resolve(
        session, linked, tasks, settings, client=client_factory(connection, settings), deadline=float("inf")
    )
    roles = apply_purposes(session, project, tasks, resolved.item_ids, draw=True)
    entries = [
        (task, annotation, item_id)
        for task, item_id in zip(tasks, resolved.item_ids, strict=True)
        for annotation in task.annotations
    ]
    done = _record(session, project, entries, from_name or connection.from_name)
    return ImportResult(
        tasks=len(tasks),
        items_created=resolved.created,
        annotations=done.recorded,
        cancelled=done.cancelled,
        unusable=done.unusable,
        labels_written=done.written,
        labels_removed=done.removed,
        ties=done.ties,
        joined_validation=roles.validation,
        skipped_tasks=_problems(tasks, resolved),
    )


def _annotations(
    session: Session,
    linked: Linked,
    action: str,
    pairs: list[tuple[LSTask, LSAnnotation]],
    settings: Settings,
) -> WebhookResult:
    tasks = [task for task, _ in pairs]
    # an annotated raw task that is no item yet is made now (usually one task; its annotation must not
    # wait for the next sync)
    resolved = _resolve(
        session,
        linked,
        tasks,
        settings,
        client=client_factory(linked.connection, settings),
        deadline=float("inf"),
    )
    named = [LSExportTask(id=task.id, data=task.data, annotations=[annotation]) for task, annotation in pairs]
    apply_purposes(session, linked.project, named, resolved.item_ids, draw=False)
    entries = [
        (task, annotation, item_id)
        for (task, annotation), item_id in zip(pairs, resolved.item_ids, strict=True)
    ]
    done = _record(session, linked.project, entries, linked.connection.from_name)
    problems = _problems(tasks, resolved)
    if problems:
        _event(
            session,
            linked.project,
            "webhook",
            422,
            _summary(len(tasks), resolved.problems, "were not recorded"),
        )
    return WebhookResult(
        action=action,
        status="ok",
        items_created=resolved.created,
        labels_written=done.written,
        labels_removed=done.removed,
        ties=done.ties,
        skipped_tasks=problems,
    )


def _record(
    session: Session,
    project: Project,
    entries: Sequence[tuple[LSTask, LSAnnotation, int | None]],
    from_name: str | None,
) -> Recorded:
    """Record the annotations of resolved tasks, re-aggregate their items' labels, commit."""
    rows = []
    cancelled = unusable = 0
    for task, annotation, item_id in entries:
        if item_id is None:
            continue
        vote = votes.read_vote(annotation, project.classes, from_name)
        if vote.label is None:
            if annotation.was_cancelled:
                cancelled += 1
            else:
                unusable += 1
                logger.info(
                    "annotation %s of task %s is not usable: %s", annotation.id, task.id, vote.problem
                )
        rows.append((annotation.id, task.id, item_id, vote))
    votes.record(session, project, rows)
    done = votes.aggregate(session, project, [item_id for _, _, item_id, _ in rows])
    return Recorded(len(rows), cancelled, unusable, done.written, done.removed, done.ties)


def _resolve(
    session: Session,
    linked: Linked,
    tasks: Sequence[LSTask],
    settings: Settings,
    *,
    client: ClientFactory,
    deadline: float,
) -> Resolved:
    """Items of tasks; raw ``$text`` / ``$image`` tasks made until ``deadline`` (monotonic), the rest
    left pending."""

    def make_raw(raw_tasks: list[RawTask]) -> RawOutcome:
        return raw.create_items(session, linked.project, raw_tasks, settings, client, deadline=deadline)

    return resolve_tasks(
        session,
        linked.project,
        linked.connection,
        [(t.id, t.data) for t in tasks],
        chunk_rows=settings.ingest_chunk_rows,
        raw=make_raw,
    )


def _problems(tasks: Sequence[LSTask], resolved: Resolved) -> list[TaskProblem]:
    return [TaskProblem(task_id=tasks[pos].id, reason=reason) for pos, reason in resolved.problems.items()]
