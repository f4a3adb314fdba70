"""SQL for the Label Studio tables: connections, the annotations behind human labels, and the few reads
and writes on the service's tables that only this integration needs (removing a label whose every
annotation was deleted, the auto-labels of given items)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.bulk import chunks, dialect
from app.db.models import (
    AutoLabel,
    HumanLabel,
    Item,
    LabelQuery,
    LabelStudioAnnotation,
    LabelStudioConnection,
    LabelStudioEvent,
    LabelStudioTask,
    Round,
)

SOURCE = "label-studio"
"""``human_labels.source`` of the labels this integration writes."""


def connection(session: Session, project_id: int) -> LabelStudioConnection | None:
    return session.get(LabelStudioConnection, project_id)


def remove_connection(session: Session, project_id: int) -> bool:
    result = session.execute(
        delete(LabelStudioConnection)
        .where(LabelStudioConnection.project_id == project_id)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def set_control(session: Session, project_id: int, from_name: str, to_name: str) -> None:
    session.execute(
        update(LabelStudioConnection)
        .where(LabelStudioConnection.project_id == project_id)
        .values(from_name=from_name, to_name=to_name)
        .execution_options(synchronize_session=False)
    )


def model_versions(session: Session, project_id: int) -> list[str]:
    """Model versions of the project's succeeded rounds, in round order."""
    stmt = (
        select(Round.model_version)
        .where(Round.project_id == project_id, Round.status == "succeeded", Round.model_version.is_not(None))
        .order_by(Round.index)
    )
    return [v for v in session.scalars(stmt) if v]


def upsert_annotations(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert annotations, replacing one whose (project_id, annotation_id) exists (rows: project_id,
    annotation_id, task_id, item_id, annotator, label, updated_at)."""
    if not rows:
        return
    make = postgresql.insert if dialect(session) == "postgresql" else sqlite.insert
    for start in range(0, len(rows), 2_000):
        stmt = make(LabelStudioAnnotation)
        stmt = stmt.on_conflict_do_update(
            index_elements=[LabelStudioAnnotation.project_id, LabelStudioAnnotation.annotation_id],
            set_={
                name: getattr(stmt.excluded, name)
                for name in ("task_id", "item_id", "annotator", "label", "updated_at")
            },
        )
        session.execute(stmt, rows[start : start + 2_000])


def delete_annotations(
    session: Session, project_id: int, *, annotation_ids: Sequence[int] = (), task_ids: Sequence[int] = ()
) -> list[int]:
    """Delete annotations by their Label Studio ids, and those of deleted tasks; returns the ids of the
    items they were about."""
    items: set[int] = set()
    for column, ids in (
        (LabelStudioAnnotation.annotation_id, annotation_ids),
        (LabelStudioAnnotation.task_id, task_ids),
    ):
        for part in chunks(list(ids)):
            where = (LabelStudioAnnotation.project_id == project_id) & column.in_(part)
            items.update(session.scalars(select(LabelStudioAnnotation.item_id).where(where)))
            session.execute(
                delete(LabelStudioAnnotation).where(where).execution_options(synchronize_session=False)
            )
    return sorted(items)


def lock_items(session: Session, project_id: int, item_ids: Sequence[int]) -> None:
    """Lock the rows of ``item_ids`` (``FOR UPDATE``, in id order) so that two webhooks about one item
    aggregate its annotations one after the other (SQLite's ``BEGIN IMMEDIATE`` already serialises)."""
    for part in chunks(sorted(item_ids)):
        session.execute(
            select(Item.id)
            .where(Item.project_id == project_id, Item.id.in_(part))
            .order_by(Item.id)
            .with_for_update()
        ).all()


def annotations_of(session: Session, item_ids: Sequence[int]) -> dict[int, list[tuple[str, int]]]:
    """(annotator, class) of every usable annotation (label not null) of ``item_ids``, oldest first."""
    found: dict[int, list[tuple[str, int]]] = {}
    for part in chunks(list(item_ids)):
        rows = session.execute(
            select(
                LabelStudioAnnotation.item_id, LabelStudioAnnotation.annotator, LabelStudioAnnotation.label
            )
            .where(LabelStudioAnnotation.item_id.in_(part), LabelStudioAnnotation.label.is_not(None))
            .order_by(LabelStudioAnnotation.annotation_id)
        )
        for item_id, annotator, label in rows:
            if label is not None:
                found.setdefault(item_id, []).append((annotator, label))
    return found


def remove_labels(session: Session, project_id: int, item_ids: Sequence[int]) -> int:
    """Undo the Label Studio human labels of ``item_ids`` (their annotations are all gone): the label is
    deleted, the item's query is open again, and an item labeled unasked goes back to the pool.
    Labels from other sources are left alone. Returns the number of labels deleted."""
    removed = 0
    for part in chunks(list(item_ids)):
        ours = list(
            session.scalars(
                select(HumanLabel.item_id).where(
                    HumanLabel.project_id == project_id,
                    HumanLabel.item_id.in_(part),
                    HumanLabel.source == SOURCE,
                )
            )
        )
        if not ours:
            continue
        session.execute(
            delete(HumanLabel)
            .where(HumanLabel.item_id.in_(ours))
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(LabelQuery)
            .where(LabelQuery.item_id.in_(ours))
            .values(answered=False)
            .execution_options(synchronize_session=False)
        )
        asked = select(LabelQuery.item_id).where(LabelQuery.item_id.in_(ours))
        session.execute(
            update(Item)
            .where(Item.id.in_(ours), Item.role == "train", Item.id.not_in(asked))
            .values(role="pool")
            .execution_options(synchronize_session=False)
        )
        removed += len(ours)
    return removed


def auto_labels_of(
    session: Session, project_id: int, item_ids: Sequence[int]
) -> dict[int, tuple[int, float]]:
    """(class, confidence) of the auto-labeled items among ``item_ids``."""
    found: dict[int, tuple[int, float]] = {}
    for part in chunks(list(item_ids)):
        rows = session.execute(
            select(AutoLabel.item_id, AutoLabel.label, AutoLabel.confidence).where(
                AutoLabel.project_id == project_id, AutoLabel.item_id.in_(part)
            )
        )
        found.update({item_id: (int(label), float(conf)) for item_id, label, conf in rows})
    return found


# -- two-way sync: the tasks tbal knows in Label Studio, and the events the status shows ---------------


def tasks_by_item(session: Session, project_id: int) -> dict[int, LabelStudioTask]:
    """The project's known Label Studio tasks, by item id."""
    rows = session.scalars(select(LabelStudioTask).where(LabelStudioTask.project_id == project_id))
    return {row.item_id: row for row in rows}


def has_tasks(session: Session, project_id: int) -> bool:
    """Whether any item of the project is linked to a Label Studio task (a sync pushed the queue)."""
    stmt = select(LabelStudioTask.item_id).where(LabelStudioTask.project_id == project_id).limit(1)
    return session.scalar(stmt) is not None


def upsert_tasks(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert task links (project_id, item_id, task_id, purpose, updated_at), replacing the task id and
    purpose of an item already linked."""
    if not rows:
        return
    make = postgresql.insert if dialect(session) == "postgresql" else sqlite.insert
    for start in range(0, len(rows), 2_000):
        stmt = make(LabelStudioTask)
        stmt = stmt.on_conflict_do_update(
            index_elements=[LabelStudioTask.project_id, LabelStudioTask.item_id],
            set_={name: getattr(stmt.excluded, name) for name in ("task_id", "purpose", "updated_at")},
        )
        session.execute(stmt, rows[start : start + 2_000])


def unlink_moved(session: Session, project_id: int, task_of_item: dict[int, int]) -> None:
    """Drop the links whose task now stands for another item (its external id was edited in Label
    Studio), so that linking ``task_of_item`` keeps one item per task."""
    item_of_task = {task: item for item, task in task_of_item.items()}
    stale: list[int] = []
    for part in chunks(list(item_of_task)):
        rows = session.execute(
            select(LabelStudioTask.id, LabelStudioTask.task_id, LabelStudioTask.item_id).where(
                LabelStudioTask.project_id == project_id, LabelStudioTask.task_id.in_(part)
            )
        )
        stale.extend(row_id for row_id, task, item in rows if item_of_task[int(task)] != int(item))
    for part in chunks(stale):
        session.execute(
            delete(LabelStudioTask)
            .where(LabelStudioTask.id.in_(part))
            .execution_options(synchronize_session=False)
        )


def forget_tasks(session: Session, project_id: int, task_ids: Sequence[int]) -> None:
    for part in chunks(list(task_ids)):
        session.execute(
            delete(LabelStudioTask)
            .where(LabelStudioTask.project_id == project_id, LabelStudioTask.task_id.in_(part))
            .execution_options(synchronize_session=False)
        )


def add_event(session: Session, project_id: int, source: str, status: int, reason: str, keep: int) -> None:
    """Record an event and drop the project's events older than the latest ``keep``."""
    session.add(
        LabelStudioEvent(
            project_id=project_id, source=source, status=status, reason=reason, created_at=utcnow()
        )
    )
    session.flush()
    cutoff = session.scalar(
        select(LabelStudioEvent.id)
        .where(LabelStudioEvent.project_id == project_id)
        .order_by(LabelStudioEvent.id.desc())
        .offset(keep)
        .limit(1)
    )
    if cutoff is not None:
        session.execute(
            delete(LabelStudioEvent)
            .where(LabelStudioEvent.project_id == project_id, LabelStudioEvent.id <= cutoff)
            .execution_options(synchronize_session=False)
        )


def latest_events(session: Session, project_id: int, limit: int) -> list[LabelStudioEvent]:
    return list(
        session.scalars(
            select(LabelStudioEvent)
            .where(LabelStudioEvent.project_id == project_id)
            .order_by(LabelStudioEvent.id.desc())
            .limit(limit)
        )
    )


def synced_connections(session: Session) -> list[int]:
    """Project ids of the connections that can sync (a Label Studio URL, project and token)."""
    return list(
        session.scalars(
            select(LabelStudioConnection.project_id).where(
                LabelStudioConnection.ls_url.is_not(None),
                LabelStudioConnection.ls_project.is_not(None),
                LabelStudioConnection.ls_token.is_not(None),
            )
        )
    )


def auto_labels_page(session: Session, project_id: int, after_item: int, limit: int) -> list[Any]:
    """(item_id, round_id, label, confidence) of auto-labeled items, by item id."""
    return list(
        session.execute(
            select(AutoLabel.item_id, AutoLabel.round_id, AutoLabel.label, AutoLabel.confidence)
            .where(AutoLabel.project_id == project_id, AutoLabel.item_id > after_item)
            .order_by(AutoLabel.item_id)
            .limit(limit)
        )
    )


def mark_auto_labels_written(session: Session, project_id: int, rows: Sequence[tuple[int, int]]) -> None:
    """Remember (item_id, round_id): that round's auto-label was written to the item's task."""
    for item_id, round_id in rows:
        session.execute(
            update(LabelStudioTask)
            .where(LabelStudioTask.project_id == project_id, LabelStudioTask.item_id == item_id)
            .values(auto_label_round=round_id)
            .execution_options(synchronize_session=False)
        )


def external_ids(session: Session, project_id: int, item_ids: Sequence[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for part in chunks(list(item_ids)):
        rows = session.execute(
            select(Item.id, Item.external_id).where(Item.project_id == project_id, Item.id.in_(part))
        )
        found.update({int(i): str(e) for i, e in rows})
    return found


def recorded_annotation_ids(session: Session, project_id: int) -> list[int]:
    return list(
        session.scalars(
            select(LabelStudioAnnotation.annotation_id).where(LabelStudioAnnotation.project_id == project_id)
        )
    )


def query_purposes(session: Session, project_id: int) -> dict[int, str]:
    """{item id: purpose} of every query of the project, open or answered."""
    rows = session.execute(
        select(LabelQuery.item_id, LabelQuery.purpose).where(LabelQuery.project_id == project_id)
    )
    return {int(item_id): str(purpose) for item_id, purpose in rows}
