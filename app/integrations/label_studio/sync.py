"""Two-way sync with the connected Label Studio project (a URL, a project id and an access token in the
connection): one pass does, in order,

1. **push the queue**: every open query becomes a task (data: the item's external id, its data and
   ``tbal_purpose``: validation / training / audit, a field Label Studio's data manager filters on);
   a task of an item tbal asked for (open or answered) carries its purpose, so that an export of the
   project keeps the validation set apart when it is imported elsewhere.
   Idempotent by external id: the project's tasks are listed first and matched to items by
   ``data[id_field]`` (or ``ls-<task id>``), so a task is never created twice however often it syncs, and
   tasks the team imported itself are found and marked. A known task whose item is no longer needed
   (auto-labeled, or no longer asked for) is marked ``tbal_purpose: "not-needed"``; tbal never deletes
   the team's tasks.
2. **pull annotations**: a JSON export of all tasks goes through the same reconciliation as an imported
   export (:func:`app.integrations.label_studio.recording.import_export`: idempotent by annotation id), and
   annotations tbal recorded that Label Studio no longer has are forgotten, so a tbal restart or outage
   (Label Studio never retries a webhook) loses nothing.
3. **write auto-labels back**: each auto-labeled item with a task gets a prediction marked as an
   auto-label (``model_version`` ``tbal-auto-label:<project>-r<k>``, its score, ``result[].tbal ==
   "auto-label"``), or an annotation when the connection says ``auto_labels_as: "annotations"``; once per
   round that labeled it.

It runs on start-up and every ``label_studio_sync_interval_s`` (an in-process timer in the embedded
default, the ``tbal.label_studio_sync`` Celery task on a schedule with workers) and on demand
(``POST /api/v1/projects/{id}/label-studio/sync``, ``tbal label-studio-sync``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from app.db.base import utcnow
from app.db.models import LabelStudioConnection, Project
from app.errors import Conflict, DomainError, Invalid, NotFound
from app.integrations.label_studio import events, votes
from app.integrations.label_studio import repository as repo
from app.integrations.label_studio.client import LabelStudioClient, make_client
from app.integrations.label_studio.label_config import ChoicesControl
from app.integrations.label_studio.predictions import load_items, ls_result, open_queries, task_data
from app.integrations.label_studio.recording import import_export, read_export
from app.integrations.label_studio.schemas import SyncResult
from app.integrations.label_studio.tasks import external_id_of
from app.items import repository as items_repo
from app.labels import repository as labels_repo
from app.labels.queue_service import ensure_sets_drawn
from app.projects import repository as projects_repo
from app.rounds import repository as rounds_repo
from app.settings import Settings

logger = logging.getLogger(__name__)

NOT_NEEDED = "not-needed"
AUTO_LABEL_VERSION = "tbal-auto-label:{version}"
PAGE = 5_000


@dataclass(frozen=True)
class LinkedTask:
    task_id: int
    data: dict[str, Any]


_running: dict[int, threading.Lock] = {}
_running_guard = threading.Lock()


def sync_project(
    session: Session, project: Project, settings: Settings, transport: httpx.BaseTransport | None = None
) -> SyncResult:
    """Push the queue, pull annotations, write auto-labels back (see the module docstring). One sync of a
    project at a time in this process (409 while one runs): two at once could both create the task of a
    new query. Syncs in separate processes (a worker's beat task and an API call) are not serialised."""
    with _running_guard:
        lock = _running.setdefault(project.id, threading.Lock())
    if not lock.acquire(blocking=False):
        raise Conflict(
            "sync", f"a Label Studio sync of project {project.id} is running; try again when it ends"
        )
    try:
        return _sync(session, project, settings, transport)
    finally:
        lock.release()


def _sync(
    session: Session, project: Project, settings: Settings, transport: httpx.BaseTransport | None
) -> SyncResult:
    connection = repo.connection(session, project.id)
    if connection is None:
        raise NotFound("label_studio", f"project {project.id} has no Label Studio connection")
    if connection.ls_project is None:
        raise Invalid(
            "ls_project",
            "the connection does not know its Label Studio project: set ls_project, or let Label Studio "
            "call /setup once",
        )
    client = make_client(connection, settings, transport)
    if client is None:
        raise Invalid(
            "ls_token", "give the connection Label Studio's URL (ls_url) and an access token (ls_token)"
        )
    ls_project = int(connection.ls_project)
    with client:
        exported = read_export(client.export(ls_project))
        pulled = import_export(session, project, exported, connection, settings)
        forgotten = _forget_missing(session, project, exported)
        created, marked, linked = _push_queue(session, project, connection, client, ls_project)
        written = _write_auto_labels(session, project, connection, client, ls_project)
    connection.last_sync_at = utcnow()
    session.commit()
    return SyncResult(
        tasks_created=created,
        tasks_marked=marked,
        tasks_linked=linked,
        annotations=pulled.annotations,
        labels_written=pulled.labels_written,
        labels_removed=pulled.labels_removed + forgotten,
        ties=pulled.ties,
        auto_labels_written=written,
        skipped_tasks=pulled.skipped_tasks,
    )


def _forget_missing(session: Session, project: Project, exported: Sequence[Any]) -> int:
    """Forget the annotations tbal recorded that Label Studio no longer has (deleted while tbal was
    away); returns the labels removed."""
    present = {a.id for task in exported for a in task.annotations}
    gone = [a for a in repo.recorded_annotation_ids(session, project.id) if a not in present]
    if not gone:
        return 0
    items = votes.forget(session, project, annotation_ids=gone)
    return votes.aggregate(session, project, items).removed


def _push_queue(
    session: Session, project: Project, connection: LabelStudioConnection, client: LabelStudioClient, ls: int
) -> tuple[int, int, int]:
    """Create the tasks of open queries that Label Studio lacks, mark purposes; (created, marked, linked)."""
    ensure_sets_drawn(session, project)
    links = _existing_tasks(session, project, connection, client, ls)
    queries = open_queries(session, project.id)
    wanted = repo.query_purposes(session, project.id)  # answered ones too: an export then carries them
    missing = [r for r in queries if int(r.item_id) not in links]
    purposes: dict[int, str | None] = {}
    if missing:
        datas = _task_data(session, project, connection, missing)
        new_ids = client.import_tasks(ls, [{"data": d} for d in datas])
        for row, task_id, data in zip(missing, new_ids, datas, strict=True):
            links[int(row.item_id)] = LinkedTask(task_id, data)
            purposes[int(row.item_id)] = str(row.purpose)
    labeled = set(labels_repo.items_with_labels(session, project.id, list(links)))
    marked = 0
    for item_id, task in links.items():
        if item_id in purposes:
            continue
        current = task.data.get("tbal_purpose")
        desired = wanted.get(item_id)
        if desired is None and current in ("validation", "training", "audit") and item_id not in labeled:
            desired = NOT_NEEDED
        purposes[item_id] = desired or (current if isinstance(current, str) else None)
        if desired is not None and current != desired:
            client.update_task_data(task.task_id, {**task.data, "tbal_purpose": desired})
            marked += 1
    now = utcnow()
    repo.unlink_moved(session, project.id, {item_id: task.task_id for item_id, task in links.items()})
    repo.upsert_tasks(
        session,
        [
            {
                "project_id": project.id,
                "item_id": item_id,
                "task_id": task.task_id,
                "purpose": (purposes.get(item_id) or None),
                "updated_at": now,
            }
            for item_id, task in links.items()
        ],
    )
    session.commit()
    return len(missing), marked, len(links)


def _existing_tasks(
    session: Session, project: Project, connection: LabelStudioConnection, client: LabelStudioClient, ls: int
) -> dict[int, LinkedTask]:
    """The project's items that have a task in Label Studio (the first task of an external id)."""
    by_ext: dict[str, LinkedTask] = {}
    for task in client.tasks(ls):
        found = task.get("data")
        data: dict[str, Any] = found if isinstance(found, dict) else {}
        try:
            ext = external_id_of(int(task["id"]), data, connection.id_field)
        except (Invalid, KeyError, TypeError, ValueError):
            continue
        by_ext.setdefault(ext, LinkedTask(int(task["id"]), data))
    item_of = items_repo.ids_by_external(session, project.id, list(by_ext))
    return {item_of[ext]: task for ext, task in by_ext.items() if ext in item_of}


def _task_data(
    session: Session, project: Project, connection: LabelStudioConnection, rows: Sequence[Any]
) -> list[dict[str, Any]]:
    """Task data of queued items: see :func:`predictions.task_data`; a text project's text (and an image
    project's picture) also under the label config's data key when tbal knows it."""
    item_ids = [int(r.item_id) for r in rows]
    if project.data_kind == "text":
        from app.items import texts_repository as item_texts

        texts = item_texts.texts_by_item_id(session, project.id, item_ids)
        key = connection.data_key or "text"
        return [
            {
                connection.id_field: r.external_id,
                key: texts.get(int(r.item_id), ""),
                "tbal_purpose": r.purpose,
            }
            for r in rows
        ]
    datas = task_data(project, connection, rows, load_items(session, project, item_ids))
    if project.data_kind == "image" and connection.data_key and connection.data_key != "image":
        for data in datas:
            if "image" in data:
                data[connection.data_key] = data["image"]
    return datas


def _write_auto_labels(
    session: Session, project: Project, connection: LabelStudioConnection, client: LabelStudioClient, ls: int
) -> int:
    """Write each auto-label not yet written for its round to the item's task; returns how many."""
    if connection.auto_labels_as == "off":
        return 0
    if not connection.from_name or not connection.to_name:
        events.logger.warning("project %s: auto-labels not written back: no /setup yet", project.id)
        repo.add_event(
            session,
            project.id,
            "sync",
            409,
            "from_name: auto-labels are not written back before Label Studio called /setup (tbal does not "
            "know the Choices control yet)",
            events.KEEP,
        )
        session.commit()
        return 0
    control = ChoicesControl(connection.from_name, connection.to_name, tuple(project.classes), False)
    links = repo.tasks_by_item(session, project.id)
    versions: dict[int, str] = {}
    written = 0
    after = 0
    while True:
        page = repo.auto_labels_page(session, project.id, after, PAGE)
        todo = [r for r in page if r.item_id in links and links[r.item_id].auto_label_round != r.round_id]
        for r in todo:
            if r.round_id not in versions:
                round_ = rounds_repo.get(session, r.round_id)
                versions[r.round_id] = (round_.model_version if round_ else None) or f"round-{r.round_id}"
        results = [
            [ls_result(project.classes[r.label], float(r.confidence), control, auto=True)] for r in todo
        ]
        if connection.auto_labels_as == "annotations":
            for r, result in zip(todo, results, strict=True):
                client.create_annotation(links[r.item_id].task_id, result)
        elif todo:
            predictions = [
                {
                    "task": links[r.item_id].task_id,
                    "result": result,
                    "score": float(r.confidence),
                    "model_version": AUTO_LABEL_VERSION.format(version=versions[r.round_id]),
                }
                for r, result in zip(todo, results, strict=True)
            ]
            client.import_predictions(ls, predictions)
        repo.mark_auto_labels_written(session, project.id, [(r.item_id, r.round_id) for r in todo])
        session.commit()
        written += len(todo)
        if len(page) < PAGE:
            return written
        after = page[-1].item_id


def sync_all(
    factory: sessionmaker[Session], settings: Settings, transport: httpx.BaseTransport | None = None
) -> int:
    """Sync every connection that can (URL, project, token); a failure is recorded as an event of its
    project and the others go on. Returns how many synced."""
    with factory() as session:
        project_ids = repo.synced_connections(session)
    done = 0
    for project_id in project_ids:
        done += sync_one(factory, project_id, settings, transport)
    return done


def sync_one(
    factory: sessionmaker[Session],
    project_id: int,
    settings: Settings,
    transport: httpx.BaseTransport | None = None,
) -> bool:
    """Sync one project in its own session; a failure becomes an event (True when it synced)."""
    try:
        with factory() as session:
            project = projects_repo.get(session, project_id)
            if project is None:
                return False
            result = sync_project(session, project, settings, transport)
    except DomainError as exc:
        events.record(factory, project_id, "sync", exc.status, f"{exc.field}: {exc.reason}")
        return False
    except Exception as exc:  # a sync must never take the timer or the worker down
        logger.exception("Label Studio sync of project %s failed", project_id)
        events.record(factory, project_id, "sync", 500, f"{type(exc).__name__}: {exc}")
        return False
    logger.info("Label Studio sync of project %s: %s", project_id, result.model_dump())
    return True


class Syncer(threading.Thread):
    """The embedded default's timer: :func:`sync_all` at start-up, then every ``interval_s`` seconds."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings) -> None:
        super().__init__(name="tbal-label-studio-sync", daemon=True)
        self._factory = factory
        self._settings = settings
        self._stop_event = threading.Event()

    def run(self) -> None:
        interval = self._settings.label_studio_sync_interval_s
        while not self._stop_event.is_set():
            try:
                sync_all(self._factory, self._settings)
            except Exception as exc:  # the database away: try again next time
                logger.warning("Label Studio sync pass failed: %s", exc)
            if interval <= 0 or self._stop_event.wait(interval):
                return

    def stop(self) -> None:
        self._stop_event.set()
