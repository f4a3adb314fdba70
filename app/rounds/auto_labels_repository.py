"""SQL for auto-labels: the bulk write (unique per project and item, never over a human label), keyset
pages, exports and the true-error audit against ground truth."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import and_, bindparam, case, exists, func, select, text
from sqlalchemy.orm import Session

from app.db.base import UTCDateTime
from app.db.bulk import (
    clear_stage,
    copy_new_rows,
    create_stage,
    dialect,
    encode_copy_rows,
    pg_timestamp,
    stage_rows,
)
from app.db.models import AutoLabel, GroundTruth, HumanLabel, Item

STAGE = "staged_auto_labels"
STAGE_COLUMNS = (
    ("item_id", "int8", "INTEGER"),
    ("label", "int4", "INTEGER"),
    ("confidence", "float8", "REAL"),
)
WRITE_CHUNK = 50_000
COPY_COLUMNS = ("project_id", "item_id", "round_id", "label", "confidence", "created_at")


def write(
    session: Session,
    project_id: int,
    round_id: int,
    item_ids: np.ndarray,
    labels: np.ndarray,
    confidences: np.ndarray,
    now: datetime,
) -> int:
    """Insert auto-labels for ``item_ids`` (n,) with ``labels`` (n,) and ``confidences`` (n,).

    ``ON CONFLICT (project_id, item_id) DO NOTHING`` and the exclusion of items with a human label make
    the write idempotent (a re-delivered round adds nothing) and keep human labels on top.
    Returns the number of rows inserted.

    On PostgreSQL the rows are first tried as one binary COPY (:func:`_copy`); the staged
    ``INSERT ... SELECT`` below is the path of SQLite and of the rare write that meets existing rows.
    """
    if dialect(session) == "postgresql":
        copied = _copy(session, project_id, round_id, item_ids, labels, confidences, now)
        if copied is not None:
            return copied
    create_stage(session, STAGE, STAGE_COLUMNS)
    insert_sql = text(
        "INSERT INTO auto_labels (project_id, item_id, round_id, label, confidence, created_at) "
        f"SELECT :pid, s.item_id, :rid, s.label, s.confidence, :now FROM {STAGE} s "
        "WHERE NOT EXISTS (SELECT 1 FROM human_labels h WHERE h.item_id = s.item_id) "
        "ORDER BY s.item_id "
        "ON CONFLICT (project_id, item_id) DO NOTHING"
    ).bindparams(bindparam("now", type_=UTCDateTime()))
    inserted = 0
    for start in range(0, len(item_ids), WRITE_CHUNK):
        stop = start + WRITE_CHUNK
        rows = list(
            zip(
                item_ids[start:stop].tolist(),
                labels[start:stop].tolist(),
                confidences[start:stop].astype(np.float64).tolist(),
                strict=True,
            )
        )
        stage_rows(session, STAGE, STAGE_COLUMNS, rows)
        result = session.execute(insert_sql, {"pid": project_id, "rid": round_id, "now": now})
        inserted += int(result.rowcount)  # type: ignore[attr-defined]
        clear_stage(session, STAGE)
    return inserted


def _copy(
    session: Session,
    project_id: int,
    round_id: int,
    item_ids: np.ndarray,
    labels: np.ndarray,
    confidences: np.ndarray,
    now: datetime,
) -> int | None:
    """Auto-labels straight into the table by binary COPY, encoded with numpy (no object per row).

    Items with a human label are left out first (the human labels of the project are read in this
    transaction, as the staged statement's ``NOT EXISTS`` reads them), and rows go in item-id order.
    None, with nothing written, when an item already has an auto-label (a unique violation): the caller
    then takes the ``ON CONFLICT DO NOTHING`` path.
    """
    human = np.fromiter(
        session.scalars(select(HumanLabel.item_id).where(HumanLabel.project_id == project_id)),
        dtype=np.int64,
    )
    ids = np.asarray(item_ids, dtype=np.int64)
    keep = ~np.isin(ids, human) if human.size else np.ones(ids.shape, dtype=bool)
    order = np.flatnonzero(keep)
    if order.size > 1 and (np.diff(ids[order]) < 0).any():
        order = order[np.argsort(ids[order], kind="stable")]
    ts = pg_timestamp(now)

    def payloads() -> Iterator[bytes]:
        for start in range(0, order.size, WRITE_CHUNK):
            rows = order[start : start + WRITE_CHUNK]
            yield encode_copy_rows(
                rows.size,
                [
                    (">i8", project_id),
                    (">i8", ids[rows]),
                    (">i8", round_id),
                    (">i4", np.asarray(labels)[rows]),
                    (">f8", np.asarray(confidences)[rows]),
                    (">i8", ts),
                ],
            )

    return copy_new_rows(session, "auto_labels", COPY_COLUMNS, payloads())


def page(
    session: Session,
    project_id: int,
    *,
    after_id: int,
    limit: int,
    round_id: int | None = None,
    label: int | None = None,
    min_confidence: float | None = None,
    max_confidence: float | None = None,
) -> list[Any]:
    stmt = (
        select(AutoLabel, Item.external_id)
        .join(Item, Item.id == AutoLabel.item_id)
        .where(AutoLabel.project_id == project_id, AutoLabel.id > after_id)
        .order_by(AutoLabel.id)
        .limit(limit)
    )
    if round_id is not None:
        stmt = stmt.where(AutoLabel.round_id == round_id)
    if label is not None:
        stmt = stmt.where(AutoLabel.label == label)
    if min_confidence is not None:
        stmt = stmt.where(AutoLabel.confidence >= min_confidence)
    if max_confidence is not None:
        stmt = stmt.where(AutoLabel.confidence <= max_confidence)
    return list(session.execute(stmt))


def count(session: Session, project_id: int) -> int:
    stmt = select(func.count()).select_from(AutoLabel).where(AutoLabel.project_id == project_id)
    return int(session.scalar(stmt) or 0)


def error_stats(session: Session, *, project_id: int, round_id: int | None = None) -> tuple[int, int, int]:
    """(auto-labels, of which with ground truth, of which wrong), for one round or the whole project."""
    wrong = case((AutoLabel.label != GroundTruth.label, 1), else_=0)
    stmt = (
        select(func.count(AutoLabel.id), func.count(GroundTruth.item_id), func.coalesce(func.sum(wrong), 0))
        .select_from(AutoLabel)
        .outerjoin(GroundTruth, GroundTruth.item_id == AutoLabel.item_id)
        .where(AutoLabel.project_id == project_id)
    )
    if round_id is not None:
        stmt = stmt.where(AutoLabel.round_id == round_id)
    n, known, n_wrong = session.execute(stmt).one()
    return int(n), int(known), int(n_wrong)


def export_human_page(session: Session, project_id: int, *, after_id: int, limit: int) -> list[Any]:
    """Human labels in id order: (id, item_id, external_id, label, distribution, created_at)."""
    stmt = (
        select(
            HumanLabel.id,
            HumanLabel.item_id,
            Item.external_id,
            HumanLabel.label,
            HumanLabel.distribution,
            HumanLabel.updated_at,
        )
        .join(Item, Item.id == HumanLabel.item_id)
        .where(HumanLabel.project_id == project_id, HumanLabel.id > after_id)
        .order_by(HumanLabel.id)
        .limit(limit)
    )
    return list(session.execute(stmt))


def export_auto_page(session: Session, project_id: int, *, after_id: int, limit: int) -> list[Any]:
    """Auto-labels of items without a human label, in id order:
    (id, item_id, external_id, label, confidence, round_id, created_at)."""
    human = exists().where(HumanLabel.item_id == AutoLabel.item_id)
    stmt = (
        select(
            AutoLabel.id,
            AutoLabel.item_id,
            Item.external_id,
            AutoLabel.label,
            AutoLabel.confidence,
            AutoLabel.round_id,
            AutoLabel.created_at,
        )
        .join(Item, and_(Item.id == AutoLabel.item_id))
        .where(AutoLabel.project_id == project_id, AutoLabel.id > after_id, ~human)
        .order_by(AutoLabel.id)
        .limit(limit)
    )
    return list(session.execute(stmt))
