"""The ML-backend protocol's calls and tbal's Label Studio import, on top of the service's own paths.

``/health`` and ``/setup`` only read a few rows (Label Studio calls them before almost every operation,
with 1 s and 3 s limits): no model is loaded there. Webhooks write what they carry and return; the Train
button starts a round through :func:`app.services.rounds.start_round`, which commits, then enqueues.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from app.db.models import LabelStudioConnection, Project
from app.errors import Invalid
from app.integrations.label_studio import repository as repo
from app.integrations.label_studio import votes
from app.integrations.label_studio.connections import Linked
from app.integrations.label_studio.label_config import ChoicesControl, matching_control
from app.integrations.label_studio.predictions import load_items, ls_prediction, score_items
from app.integrations.label_studio.schemas import (
    ImportResult,
    LSAnnotation,
    LSExportTask,
    LSTask,
    PredictRequest,
    SetupRequest,
    TaskProblem,
    Webhook,
    WebhookResult,
)
from app.integrations.label_studio.tasks import Resolved, resolve_tasks
from app.repositories import rounds as rounds_repo
from app.services.dispatch import Dispatcher
from app.services.predict import ArtifactCache
from app.services.rounds import start_round
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


def model_version(session: Session, project: Project) -> str:
    """The latest succeeded round's version (``<project>-r<index>``), ``<project>-untrained`` before."""
    latest = rounds_repo.last_succeeded(session, project.id)
    if latest is None or latest.model_version is None:
        return f"{project.name}-untrained"
    return latest.model_version


def health(linked: Linked) -> dict[str, object]:
    return {"status": "UP", "model_class": MODEL_CLASS, "project": linked.project.name}


def setup(session: Session, linked: Linked, body: SetupRequest) -> dict[str, str]:
    """Check the label config's Choices against the classes (422 naming the difference) and remember
    the control's names (written only when they change); answer the current model version."""
    control = matching_control(body.schema_, linked.project.classes, "schema")
    row = linked.connection
    if (row.from_name, row.to_name) != (control.from_name, control.to_name):
        repo.set_control(session, row.project_id, control.from_name, control.to_name)
    version = model_version(session, linked.project)
    session.commit()
    return {"model_version": version}


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


def predict_tasks(
    session: Session, linked: Linked, body: PredictRequest, cache: ArtifactCache, settings: Settings
) -> dict[str, list[dict[str, object]]]:
    """One prediction per task, in order; a task tbal cannot map to an item is a 422 naming it."""
    project = linked.project
    control = control_of(linked, body.label_config)
    resolved = _resolve(session, linked, body.tasks, settings)
    if resolved.problems:
        shown = "; ".join(list(resolved.problems.values())[:SHOWN_PROBLEMS])
        more = len(resolved.problems) - SHOWN_PROBLEMS
        raise Invalid(
            "tasks",
            f"{len(resolved.problems)} tasks have no item: {shown}"
            + (f" (+{more} more)" if more > 0 else ""),
        )
    item_ids = [i for i in resolved.item_ids if i is not None]
    X = load_items(session, project, item_ids)
    scored = score_items(session, project, item_ids, X, cache, batch=settings.max_batch_items)
    return {
        "results": [
            ls_prediction(scored.version, project.classes[int(k)], float(s), control)
            for k, s in zip(scored.labels, scored.scores, strict=True)
        ]
    }


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
            action=action, status="ok", labels_written=done.written, labels_removed=done.removed
        )
    if action == "TASKS_CREATED":
        resolved = _resolve(session, linked, body.tasks or [], settings)
        return WebhookResult(
            action=action,
            status="ok",
            items_created=resolved.created,
            skipped_tasks=_problems(body.tasks or [], resolved),
        )
    if action == "START_TRAINING":
        round_ = start_round(session, linked.project, dispatcher)
        return WebhookResult(action=action, status="queued", round_id=round_.id)
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
    resolved = _resolve(session, linked, tasks, settings)
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
    resolved = _resolve(session, linked, tasks, settings)
    entries = [
        (task, annotation, item_id)
        for (task, annotation), item_id in zip(pairs, resolved.item_ids, strict=True)
    ]
    done = _record(session, linked.project, entries, linked.connection.from_name)
    return WebhookResult(
        action=action,
        status="ok",
        items_created=resolved.created,
        labels_written=done.written,
        labels_removed=done.removed,
        skipped_tasks=_problems(tasks, resolved),
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
    return Recorded(len(rows), cancelled, unusable, done.written, done.removed)


def _resolve(session: Session, linked: Linked, tasks: Sequence[LSTask], settings: Settings) -> Resolved:
    return resolve_tasks(
        session,
        linked.project,
        linked.connection,
        [(t.id, t.data) for t in tasks],
        chunk_rows=settings.ingest_chunk_rows,
    )


def _problems(tasks: Sequence[LSTask], resolved: Resolved) -> list[TaskProblem]:
    return [TaskProblem(task_id=tasks[pos].id, reason=reason) for pos, reason in resolved.problems.items()]
