"""From Label Studio tasks to items: which item a task is, creating the items of new tasks.

A task names its item by ``data[id_field]`` (an external id); a task without it is the item
``ls-<task id>``. An item that does not exist yet is created in the pool from ``data[data_field]``
(features: d numbers; images: H×W[×C] integers 0..255), through the service's ingestion (idempotent on
the external id). A task that names no existing item and carries no usable data is reported, not
guessed at.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from app.db.models import LabelStudioConnection, Project
from app.errors import Invalid
from app.integrations.label_studio.raw import RawOutcome, RawTask, raw_value
from app.items import repository as items_repo
from app.items.arrays import json_payload, layout_of
from app.items.schemas import ItemCreate, ItemsCreate
from app.items.service import MAX_EXTERNAL_ID, ingest_json

TASK_PREFIX = "ls-"


@dataclass(frozen=True)
class Resolved:
    """Per task (in order): the item id, or None with the reason in ``problems``."""

    item_ids: list[int | None]
    problems: dict[int, str]
    """task position -> why the task has no item"""
    created: int
    pending: list[RawTask] = field(default_factory=list)
    """raw tasks whose items are still to be made (in the background)"""


def external_id_of(task_id: int, data: dict[str, Any], id_field: str) -> str:
    """The external id a task stands for (``data[id_field]``, else ``ls-<task id>``); :class:`Invalid`
    for an id that an item could not have."""
    value = data.get(id_field)
    if value is None or value == "":
        return f"{TASK_PREFIX}{task_id}"
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Invalid(
            f"data.{id_field}", f"expected a string or integer external id, got {type(value).__name__}"
        )
    text = str(value)
    if len(text) > MAX_EXTERNAL_ID or "\x00" in text:
        raise Invalid(f"data.{id_field}", f"expected 1..{MAX_EXTERNAL_ID} characters without NUL")
    return text


def resolve_tasks(
    session: Session,
    project: Project,
    connection: LabelStudioConnection,
    tasks: list[tuple[int, dict[str, Any]]],
    *,
    chunk_rows: int,
    raw: Callable[[list[RawTask]], RawOutcome] | None = None,
) -> Resolved:
    """Items of ``tasks`` = [(task id, task data)], creating the missing ones (committed): from
    ``data[data_field]``, else from raw ``$text`` / ``$image`` data through ``raw`` (see
    :mod:`app.integrations.label_studio.raw`; what it leaves pending has no item yet). Like any upload,
    the items made here draw the project's validation and seed sets while they are open
    (:mod:`app.labels.queue_service`)."""
    problems: dict[int, str] = {}
    externals = _external_ids(tasks, connection, problems)
    known = items_repo.ids_by_external(session, project.id, [e for e in externals if e is not None])
    missing = _missing_items(project, connection, tasks, externals, known, problems, with_raw=raw is not None)
    pending: list[RawTask] = []
    created = 0
    if missing.items:
        items = ItemsCreate(items=list(missing.items.values()))
        created = ingest_json(session, project, items, chunk_rows=chunk_rows).inserted
        known.update(items_repo.ids_by_external(session, project.id, list(missing.items)))
    if missing.raw and raw is not None:
        outcome = raw(list(missing.raw.values()))
        created += outcome.created
        problems.update(outcome.problems)
        pending = outcome.pending
        known.update(items_repo.ids_by_external(session, project.id, list(missing.raw)))
    item_ids = [
        known.get(ext) if ext is not None and pos not in problems else None
        for pos, ext in enumerate(externals)
    ]
    return Resolved(item_ids=item_ids, problems=problems, created=created, pending=pending)


@dataclass
class _Missing:
    """Tasks whose items do not exist yet, by external id: with their data, or with raw data."""

    items: dict[str, ItemCreate] = field(default_factory=dict)
    raw: dict[str, RawTask] = field(default_factory=dict)


def _external_ids(
    tasks: list[tuple[int, dict[str, Any]]], connection: LabelStudioConnection, problems: dict[int, str]
) -> list[str | None]:
    """Each task's external id, or None with the reason added to ``problems``."""
    externals: list[str | None] = []
    for pos, (task_id, data) in enumerate(tasks):
        try:
            externals.append(external_id_of(task_id, data, connection.id_field))
        except Invalid as exc:
            problems[pos] = f"task {task_id}: {exc.field}: {exc.reason}"
            externals.append(None)
    return externals


def _missing_items(
    project: Project,
    connection: LabelStudioConnection,
    tasks: list[tuple[int, dict[str, Any]]],
    externals: list[str | None],
    known: dict[str, int],
    problems: dict[int, str],
    *,
    with_raw: bool,
) -> _Missing:
    """The items to create for tasks whose external id names no item (one per id); a task with no usable
    data is added to ``problems``."""
    layout = layout_of(project)
    missing = _Missing()
    for pos, (task_id, data) in enumerate(tasks):
        ext = externals[pos]
        if ext is None or ext in known or ext in missing.items or ext in missing.raw:
            continue
        value = None if project.data_kind == "text" else data.get(connection.data_field)
        raw_data = raw_value(project, connection, data) if value is None and with_raw else None
        if raw_data is not None:
            missing.raw[ext] = RawTask(pos, task_id, ext, raw_data)
            continue
        if value is None:
            problems[pos] = (
                f"task {task_id}: no item with external id {ext!r} in this project and no "
                f"data.{connection.data_field} to create it from ({_expected(layout.kind, layout.shape)})"
            )
            continue
        try:
            arr = json_payload(layout, value, f"data.{connection.data_field}")
        except Invalid as exc:
            problems[pos] = f"task {task_id}: {exc.field}: {exc.reason}"
            continue
        missing.items[ext] = ItemCreate(external_id=ext, **{layout.payload: arr.tolist()})
    return missing


def _expected(kind: str, shape: tuple[int, ...]) -> str:
    if kind == "text":
        return "a text"
    if kind == "features":
        return f"{shape[0]} numbers"
    return f"nested lists of integers 0..255 of shape {list(shape)}"
