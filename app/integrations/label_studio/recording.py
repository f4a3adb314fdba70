"""Label Studio annotations into tbal's human labels: which item each task is (made from the task's data
when new), the role its purpose gives it, the votes recorded and aggregated into labels. Shared by the
three ways annotations arrive: a JSON export imported (``POST .../label-studio/import``, and the sync's
pull, :mod:`app.integrations.label_studio.sync`), the webhook's annotation events, and the items of raw
tasks made in the background. Each batch is committed here; refusals become the connection's events.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import LabelStudioConnection, Project
from app.errors import Invalid
from app.integrations.label_studio import events, raw, votes
from app.integrations.label_studio import repository as repo
from app.integrations.label_studio.client import LabelStudioClient, make_client
from app.integrations.label_studio.connections import Linked
from app.integrations.label_studio.purposes import apply_purposes
from app.integrations.label_studio.raw import ClientFactory, RawOutcome, RawTask
from app.integrations.label_studio.schemas import (
    ImportResult,
    LSAnnotation,
    LSExportTask,
    LSTask,
    TaskProblem,
    WebhookResult,
)
from app.integrations.label_studio.tasks import Resolved, resolve_tasks
from app.projects import repository as projects_repo
from app.settings import Settings

logger = logging.getLogger(__name__)

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


def summary(n: int, problems: dict[int, str], what: str) -> str:
    shown = "; ".join(list(problems.values())[:SHOWN_PROBLEMS])
    more = len(problems) - SHOWN_PROBLEMS
    return f"{len(problems)} of {n} tasks {what}: {shown}" + (f" (+{more} more)" if more > 0 else "")


def event(session: Session, project: Project, source: str, status: int, reason: str) -> None:
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
            resolved = resolve(session, linked, lstasks, settings, client=factory_, deadline=float("inf"))
            if resolved.problems:
                event(
                    session,
                    project,
                    "background",
                    422,
                    summary(len(tasks), resolved.problems, "have no item"),
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
    resolved = resolve(
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
        skipped_tasks=problems_of(tasks, resolved),
    )


def record_annotations(
    session: Session,
    linked: Linked,
    action: str,
    pairs: list[tuple[LSTask, LSAnnotation]],
    settings: Settings,
) -> WebhookResult:
    tasks = [task for task, _ in pairs]
    # an annotated raw task that is no item yet is made now (usually one task; its annotation must not
    # wait for the next sync)
    resolved = resolve(
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
    problems = webhook_problems(session, linked.project, tasks, resolved, "were not recorded")
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


def resolve(
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


def webhook_problems(
    session: Session, project: Project, tasks: Sequence[LSTask], resolved: Resolved, what: str
) -> list[TaskProblem]:
    """The tasks of a webhook that have no item, kept as one event of the connection (``what``: what
    happened to them)."""
    problems = problems_of(tasks, resolved)
    if problems:
        event(session, project, "webhook", 422, summary(len(tasks), resolved.problems, what))
    return problems


def problems_of(tasks: Sequence[LSTask], resolved: Resolved) -> list[TaskProblem]:
    return [TaskProblem(task_id=tasks[pos].id, reason=reason) for pos, reason in resolved.problems.items()]
