"""SQL for human labels and for the queries (the items the service asked humans to label)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, and_, bindparam, delete, exists, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.db.base import UTCDateTime
from app.db.bulk import chunks, dialect
from app.db.models import GroundTruth, HumanLabel, Item, LabelQuery, StratumItem


def existing_label_items(session: Session, item_ids: Sequence[int]) -> set[int]:
    found: set[int] = set()
    for part in chunks(list(item_ids)):
        found.update(session.scalars(select(HumanLabel.item_id).where(HumanLabel.item_id.in_(part))))
    return found


def upsert_human_labels(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert human labels, replacing the label of an item that already has one (rows: project_id,
    item_id, label, distribution, votes, source, created_at, updated_at)."""
    if not rows:
        return
    make = postgresql.insert if dialect(session) == "postgresql" else sqlite.insert
    for start in range(0, len(rows), 2_000):
        stmt = make(HumanLabel)
        stmt = stmt.on_conflict_do_update(
            index_elements=[HumanLabel.item_id],
            set_={
                "label": stmt.excluded.label,
                "distribution": stmt.excluded.distribution,
                "votes": stmt.excluded.votes,
                "source": stmt.excluded.source,
                "updated_at": stmt.excluded.updated_at,
            },
        )
        session.execute(stmt, rows[start : start + 2_000])


def mark_answered(session: Session, item_ids: Sequence[int]) -> int:
    answered = 0
    for part in chunks(list(item_ids)):
        stmt = (
            update(LabelQuery)
            .where(LabelQuery.item_id.in_(part), LabelQuery.answered.is_(False))
            .values(answered=True)
            .execution_options(synchronize_session=False)
        )
        answered += session.execute(stmt).rowcount  # type: ignore[attr-defined]
    return answered


def add_queries(
    session: Session, project_id: int, item_ids: np.ndarray, purpose: str, round_id: int | None, now: datetime
) -> None:
    """Queries for ``item_ids`` (already checked to be askable)."""
    rows = [
        {
            "project_id": project_id,
            "item_id": int(i),
            "round_id": round_id,
            "purpose": purpose,
            "answered": False,
            "created_at": now,
        }
        for i in item_ids
    ]
    for start in range(0, len(rows), 5_000):
        session.execute(insert(LabelQuery), rows[start : start + 5_000])


def initial_queries_answered(session: Session, project_id: int) -> bool:
    """Whether any query of the initial draw (``round_id`` null) has been answered."""
    stmt = (
        select(LabelQuery.id)
        .where(
            LabelQuery.project_id == project_id,
            LabelQuery.round_id.is_(None),
            LabelQuery.answered.is_(True),
        )
        .limit(1)
    )
    return session.scalar(stmt) is not None


def drop_open_initial_queries(session: Session, project_id: int) -> list[int]:
    """Delete the open queries of the initial draw; the ids of their items, sorted."""
    where = (
        LabelQuery.project_id == project_id,
        LabelQuery.round_id.is_(None),
        LabelQuery.answered.is_(False),
    )
    item_ids = sorted(int(i) for i in session.scalars(select(LabelQuery.item_id).where(*where)))
    session.execute(delete(LabelQuery).where(*where).execution_options(synchronize_session=False))
    return item_ids


ROUND_QUERY_ROLES = {"training": "train", "validation": "validation"}
"""The role an item takes when a round queries it for each purpose: a training query trains the next
round; a validation top-up (project setting ``validation_floor``) and an item drawn inside the stratum
(``targeted_validation``) join the validation set."""


def add_round_queries(
    session: Session,
    project_id: int,
    round_id: int,
    item_ids: Sequence[int] | np.ndarray,
    now: datetime,
    *,
    purpose: str = "training",
) -> int:
    """Queries of ``purpose`` chosen by a round, only for items still in the unlabeled pool (a re-run adds
    nothing twice: an item is queried at most once). Their items take the purpose's role
    (:data:`ROUND_QUERY_ROLES`). Returns how many."""
    role = ROUND_QUERY_ROLES[purpose]
    added = 0
    for part in chunks(item_ids):
        stmt = text(
            "INSERT INTO queries (project_id, item_id, round_id, purpose, answered, created_at) "
            "SELECT i.project_id, i.id, :rid, :purpose, :no, :now FROM items i "
            "WHERE i.id IN :ids AND i.project_id = :pid AND i.role = 'pool' "
            "AND NOT EXISTS (SELECT 1 FROM human_labels h WHERE h.item_id = i.id) "
            "AND NOT EXISTS (SELECT 1 FROM auto_labels a "
            "WHERE a.project_id = i.project_id AND a.item_id = i.id) "
            "ON CONFLICT (item_id) DO NOTHING"
        ).bindparams(bindparam("ids", expanding=True), bindparam("now", type_=UTCDateTime()))
        added += session.execute(
            stmt,
            {"rid": round_id, "pid": project_id, "ids": part, "now": now, "no": False, "purpose": purpose},
        ).rowcount  # type: ignore[attr-defined]
    queried = select(LabelQuery.item_id).where(LabelQuery.round_id == round_id, LabelQuery.purpose == purpose)
    session.execute(
        update(Item)
        .where(Item.id.in_(queried), Item.role == "pool")
        .values(role=role)
        .execution_options(synchronize_session=False)
    )
    return int(added)


def is_validation_top_up() -> ColumnElement[bool]:
    """Whether a query is a validation top-up (``validation_floor``), paid from ``label_budget``: purpose
    ``validation``, made by a round (the validation set drawn at the start has no round), and not drawn
    inside the project's stratum (``targeted_validation``: those are paid from ``validation_size``)."""
    targeted = exists().where(
        StratumItem.project_id == LabelQuery.project_id,
        StratumItem.item_id == LabelQuery.item_id,
        StratumItem.targeted.is_(True),
    )
    return and_(LabelQuery.purpose == "validation", LabelQuery.round_id.is_not(None), ~targeted)


def count_validation_top_ups(session: Session, project_id: int) -> int:
    """Validation items that rounds bought from the pool (:func:`is_validation_top_up`). They are paid
    from ``label_budget``, like the training labels."""
    stmt = (
        select(func.count())
        .select_from(LabelQuery)
        .where(LabelQuery.project_id == project_id, is_validation_top_up())
    )
    return int(session.scalar(stmt) or 0)


def open_queries_page(session: Session, project_id: int, *, after_id: int, limit: int) -> list[Any]:
    stmt = (
        select(LabelQuery.id, LabelQuery.item_id, LabelQuery.purpose, LabelQuery.round_id, Item.external_id)
        .join(Item, Item.id == LabelQuery.item_id)
        .where(LabelQuery.project_id == project_id, LabelQuery.answered.is_(False), LabelQuery.id > after_id)
        .order_by(LabelQuery.id)
        .limit(limit)
    )
    return list(session.execute(stmt))


def count_open_queries(session: Session, project_id: int, purpose: str | None = None) -> int:
    stmt = (
        select(func.count())
        .select_from(LabelQuery)
        .where(LabelQuery.project_id == project_id, LabelQuery.answered.is_(False))
    )
    if purpose is not None:
        stmt = stmt.where(LabelQuery.purpose == purpose)
    return int(session.scalar(stmt) or 0)


def open_queries_with_truth(session: Session, project_id: int) -> list[Any]:
    """(item_id, external_id, ground-truth label or None) of every unanswered query."""
    stmt = (
        select(LabelQuery.item_id, Item.external_id, GroundTruth.label)
        .join(Item, Item.id == LabelQuery.item_id)
        .outerjoin(GroundTruth, GroundTruth.item_id == LabelQuery.item_id)
        .where(LabelQuery.project_id == project_id, LabelQuery.answered.is_(False))
        .order_by(LabelQuery.id)
    )
    return list(session.execute(stmt))


def count_human_labels(session: Session, project_id: int) -> int:
    stmt = select(func.count()).select_from(HumanLabel).where(HumanLabel.project_id == project_id)
    return int(session.scalar(stmt) or 0)


def labels_updated_since(session: Session, project_id: int, since: datetime) -> int:
    stmt = (
        select(func.count())
        .select_from(HumanLabel)
        .where(HumanLabel.project_id == project_id, HumanLabel.updated_at > since)
    )
    return int(session.scalar(stmt) or 0)


def human_labels_page(session: Session, project_id: int, *, after_id: int, limit: int) -> list[Any]:
    stmt = (
        select(HumanLabel, Item.external_id, Item.role)
        .join(Item, and_(Item.id == HumanLabel.item_id))
        .where(HumanLabel.project_id == project_id, HumanLabel.id > after_id)
        .order_by(HumanLabel.id)
        .limit(limit)
    )
    return list(session.execute(stmt))


def items_with_labels(session: Session, project_id: int, item_ids: Sequence[int]) -> dict[int, Any]:
    """(external_id, current human label or None) of the project's items ``item_ids``, by item id; ids of
    other projects or deleted items are absent."""
    found: dict[int, Any] = {}
    for part in chunks(list(item_ids)):
        stmt = (
            select(Item.id, Item.external_id, HumanLabel.label)
            .outerjoin(HumanLabel, HumanLabel.item_id == Item.id)
            .where(Item.project_id == project_id, Item.id.in_(part))
        )
        found.update({row.id: row for row in session.execute(stmt)})
    return found
