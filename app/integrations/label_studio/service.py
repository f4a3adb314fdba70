"""The ML-backend protocol's calls, on top of the service's own paths (annotations and imports into human
labels, and the items of tasks: :mod:`app.integrations.label_studio.recording`).

``/health`` and ``/setup`` only read a few rows (Label Studio calls them before almost every operation,
with 1 s and 3 s limits): no model is loaded there. Webhooks write what they carry and return; the Train
button starts a round through :func:`app.rounds.service.start_round`, which commits, then enqueues.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from sqlalchemy.orm import Session

from app.db.models import Project
from app.errors import Conflict, Invalid
from app.integrations.label_studio import credentials, votes
from app.integrations.label_studio import repository as repo
from app.integrations.label_studio.connections import Linked
from app.integrations.label_studio.label_config import ChoicesControl, labeled_object, matching_control
from app.integrations.label_studio.predictions import load_items, ls_prediction, score_items
from app.integrations.label_studio.raw import ClientFactory, RawTask
from app.integrations.label_studio.recording import (
    event,
    record_annotations,
    resolve,
    summary,
    webhook_problems,
)
from app.integrations.label_studio.schemas import (
    EventRead,
    LSAnnotation,
    LSTask,
    PredictRequest,
    SetupRequest,
    StatusRead,
    Webhook,
    WebhookResult,
)
from app.rounds import repository as rounds_repo
from app.rounds.dispatch import Dispatcher
from app.rounds.liveness import reap_stale_rounds
from app.rounds.predict_service import ArtifactCache
from app.rounds.service import start_round
from app.settings import Settings

logger = logging.getLogger(__name__)

MODEL_CLASS = "tbal"


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
    from app.labels import repository as labels_repo

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
        event(session, project, "predict", exc.status, f"{exc.field}: {exc.reason}")
        return Predicted({"results": [[] for _ in range(n)]}, [])
    deadline = time.monotonic() + settings.label_studio_predict_budget_s
    resolved = resolve(session, linked, body.tasks, settings, client=client, deadline=deadline)
    if resolved.problems:
        event(session, project, "predict", 422, summary(len(body.tasks), resolved.problems, "have no item"))
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
            event(session, project, "predict", exc.status, f"{exc.field}: {exc.reason}")
            return Predicted({"results": results}, resolved.pending)
        for (pos, _), k, score, auto in zip(mapped, scored.labels, scored.scores, scored.auto, strict=True):
            results[pos] = ls_prediction(
                scored.version, project.classes[int(k)], float(score), control, auto=bool(auto)
            )
    return Predicted({"results": results}, resolved.pending)


def webhook(
    session: Session, linked: Linked, body: Webhook, dispatcher: Dispatcher, settings: Settings
) -> WebhookResult:
    """Record what a webhook carries (see the module docstring); other actions are acknowledged."""
    action = body.action
    if action in ("ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED"):
        return record_annotations(session, linked, action, _pairs(body), settings)
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
        resolved = resolve(session, linked, tasks, settings, client=lambda: None, deadline=0.0)
        problems = webhook_problems(session, linked.project, tasks, resolved, "have no item")
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
