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
from app.repositories import items as items_repo
from app.schemas.items import ItemCreate, ItemsCreate
from app.services.arrays import json_payload, layout_of
from app.services.ingest import MAX_EXTERNAL_ID, ingest_json

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
    :mod:`app.integrations.label_studio.raw`; what it leaves pending has no item yet)."""
    layout = layout_of(project)
    problems: dict[int, str] = {}
    externals: list[str | None] = []
    for pos, (task_id, data) in enumerate(tasks):
        try:
            externals.append(external_id_of(task_id, data, connection.id_field))
        except Invalid as exc:
            problems[pos] = f"task {task_id}: {exc.field}: {exc.reason}"
            externals.append(None)
    known = items_repo.ids_by_external(session, project.id, [e for e in externals if e is not None])
    new: dict[str, ItemCreate] = {}
    raw_tasks: dict[str, RawTask] = {}
    for pos, (task_id, data) in enumerate(tasks):
        ext = externals[pos]
        if ext is None or ext in known or ext in new or ext in raw_tasks:
            continue
        value = None if project.data_kind == "text" else data.get(connection.data_field)
        raw_data = raw_value(project, connection, data) if value is None and raw is not None else None
        if raw_data is not None:
            raw_tasks[ext] = RawTask(pos, task_id, ext, raw_data)
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
        payload = {layout.payload: arr.tolist()}
        new[ext] = ItemCreate(external_id=ext, **payload)
    created = 0
    if new:
        result = ingest_json(session, project, ItemsCreate(items=list(new.values())), chunk_rows=chunk_rows)
        created = result.inserted
        known.update(items_repo.ids_by_external(session, project.id, list(new)))
    pending: list[RawTask] = []
    if raw_tasks and raw is not None:
        outcome = raw(list(raw_tasks.values()))
        created += outcome.created
        problems.update(outcome.problems)
        pending = outcome.pending
        known.update(items_repo.ids_by_external(session, project.id, list(raw_tasks)))
    item_ids: list[int | None] = []
    for pos, ext in enumerate(externals):
        item_id = known.get(ext) if ext is not None and pos not in problems else None
        item_ids.append(item_id)
    return Resolved(item_ids=item_ids, problems=problems, created=created, pending=pending)


def _expected(kind: str, shape: tuple[int, ...]) -> str:
    if kind == "text":
        return "a text"
    if kind == "features":
        return f"{shape[0]} numbers"
    return f"nested lists of integers 0..255 of shape {list(shape)}"
