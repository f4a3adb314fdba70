"""SQL for a project's stratum (``loop.targeted_validation``; :mod:`tbal.plan`, "The stratum"): the round
that fixes it writes its row and its members; later rounds read the members back as flags over their own
items (:func:`app.rounds.load.load_round`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import exists, insert, select
from sqlalchemy.orm import Session

from app.db.bulk import append_rows
from app.db.models import ProjectStratum, StratumItem

MEMBER_COLUMNS = ("project_id", "item_id", "targeted")
MEMBER_PG_TYPES = ("int8", "int8", "bool")


@dataclass(frozen=True)
class StoredStratum:
    """A project's stratum as stored: its members' item ids (sorted) and, aligned with them, whether each
    was drawn inside it as a validation item."""

    item_ids: np.ndarray  # (m,) int64, sorted
    targeted: np.ndarray  # (m,) bool

    def flags(self, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(in the stratum, drawn inside it) as bool arrays over ``item_ids`` (any order)."""
        ids = np.asarray(item_ids, dtype=np.int64)
        inside = np.isin(ids, self.item_ids)
        targeted = np.isin(ids, self.item_ids[self.targeted])
        return inside, targeted


def is_fixed(session: Session, project_id: int) -> bool:
    """Whether a round of the project fixed its stratum."""
    return bool(session.scalar(select(exists().where(ProjectStratum.project_id == project_id))))


def load(session: Session, project_id: int) -> StoredStratum | None:
    """The project's stratum, or None when no round fixed one."""
    if not is_fixed(session, project_id):
        return None
    stmt = (
        select(StratumItem.item_id, StratumItem.targeted)
        .where(StratumItem.project_id == project_id)
        .order_by(StratumItem.item_id)
    )
    rows = session.execute(stmt).all()
    return StoredStratum(
        item_ids=np.fromiter((r.item_id for r in rows), dtype=np.int64, count=len(rows)),
        targeted=np.fromiter((bool(r.targeted) for r in rows), dtype=bool, count=len(rows)),
    )


def fix(
    session: Session,
    project_id: int,
    round_id: int,
    *,
    cut: float,
    members: np.ndarray,
    targeted: np.ndarray,
    now: datetime,
) -> None:
    """Record the stratum round ``round_id`` fixed: its row (``cut``: +inf stores NULL) and its
    ``members`` (item ids), of which ``targeted`` (item ids, a subset) were drawn inside it. No commit;
    a second stratum of the project breaks the primary key (the plan fixes one at most)."""
    session.execute(
        insert(ProjectStratum).values(
            project_id=project_id,
            round_id=round_id,
            cut=cut if math.isfinite(cut) else None,
            targeted=int(np.asarray(targeted).size),
            created_at=now,
        )
    )
    ids = np.unique(np.asarray(members, dtype=np.int64))
    drawn = np.isin(ids, np.asarray(targeted, dtype=np.int64))
    rows = zip([project_id] * ids.size, ids.tolist(), drawn.tolist(), strict=True)
    append_rows(session, "stratum_items", MEMBER_COLUMNS, rows, pg_types=MEMBER_PG_TYPES)
