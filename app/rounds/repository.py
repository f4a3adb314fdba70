"""SQL for rounds: creation, the claim under a row lock, progress, the final state, and the statements
that read a round's inputs (streamed by :func:`app.items.repository.load_rows`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, func, or_, select, update
from sqlalchemy.orm import Session

from app.db.models import ACTIVE_ROUND_STATUSES, AutoLabel, HumanLabel, Item, LabelQuery, Round
from tbal.reports import RoundReport


def add(session: Session, round_: Round) -> Round:
    session.add(round_)
    session.flush()
    return round_


def get(session: Session, round_id: int) -> Round | None:
    return session.get(Round, round_id)


def active(session: Session, project_id: int) -> Round | None:
    stmt = select(Round).where(Round.project_id == project_id, Round.status.in_(ACTIVE_ROUND_STATUSES))
    return session.scalars(stmt).first()


def next_index(session: Session, project_id: int) -> int:
    last = session.scalar(select(func.max(Round.index)).where(Round.project_id == project_id))
    return 0 if last is None else int(last) + 1


def last_succeeded(session: Session, project_id: int) -> Round | None:
    stmt = (
        select(Round)
        .where(Round.project_id == project_id, Round.status == "succeeded")
        .order_by(Round.index.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


def count_succeeded(session: Session, project_id: int) -> int:
    stmt = (
        select(func.count())
        .select_from(Round)
        .where(Round.project_id == project_id, Round.status == "succeeded")
    )
    return int(session.scalar(stmt) or 0)


def count_all(session: Session, project_id: int) -> int:
    return int(
        session.scalar(select(func.count()).select_from(Round).where(Round.project_id == project_id)) or 0
    )


def page(session: Session, project_id: int, *, after_id: int, limit: int) -> list[Round]:
    stmt = (
        select(Round)
        .where(Round.project_id == project_id, Round.id > after_id)
        .order_by(Round.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def lock(session: Session, round_id: int) -> Round | None:
    """The round row under ``SELECT ... FOR UPDATE`` (PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already
    serialises writers)."""
    stmt = select(Round).where(Round.id == round_id).with_for_update()
    return session.execute(stmt.execution_options(populate_existing=True)).scalars().one_or_none()


def claim(session: Session, round_id: int, token: str, now: datetime, stale_before: datetime) -> bool:
    """Mark the round running under ``token`` if it is queued, or running with a heartbeat older than
    ``stale_before`` (its worker died). True when this caller got it."""
    result = session.execute(
        update(Round)
        .where(
            Round.id == round_id,
            or_(
                Round.status == "queued",
                (Round.status == "running")
                & or_(Round.heartbeat_at.is_(None), Round.heartbeat_at < stale_before),
            ),
        )
        .values(
            status="running",
            claim_token=token,
            started_at=now,
            heartbeat_at=now,
            attempts=Round.attempts + 1,
            stage="load",
            progress=0.0,
            error=None,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def update_claimed(session: Session, round_id: int, token: str, **values: Any) -> bool:
    """Change a running round that ``token`` still holds; False when the claim was lost."""
    result = session.execute(
        update(Round)
        .where(Round.id == round_id, Round.claim_token == token, Round.status == "running")
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def stale_or_queued_ids(session: Session, stale_before: datetime) -> list[int]:
    stmt = (
        select(Round.id)
        .where(
            or_(
                Round.status == "queued",
                (Round.status == "running")
                & or_(Round.heartbeat_at.is_(None), Round.heartbeat_at < stale_before),
            )
        )
        .order_by(Round.id)
    )
    return list(session.scalars(stmt))


def fail(session: Session, round_id: int, reason: str, now: datetime) -> None:
    """Mark a queued round failed (it could not be enqueued)."""
    session.execute(
        update(Round)
        .where(Round.id == round_id, Round.status == "queued")
        .values(status="failed", error=reason, finished_at=now)
        .execution_options(synchronize_session=False)
    )


def fail_stale(
    session: Session, stale_before: datetime, now: datetime, reason: str, *, project_id: int | None = None
) -> list[int]:
    """Mark failed every running round whose heartbeat is older than ``stale_before`` (its worker died);
    returns their ids. The claim token is cleared, so a late write by a runner that was only slow finds
    the claim lost and writes nothing."""
    stmt = (
        update(Round)
        .where(
            Round.status == "running",
            or_(Round.heartbeat_at.is_(None), Round.heartbeat_at < stale_before),
        )
        .values(status="failed", error=reason, finished_at=now, claim_token=None, stage=None)
        .returning(Round.id)
        .execution_options(synchronize_session=False)
    )
    if project_id is not None:
        stmt = stmt.where(Round.project_id == project_id)
    return sorted(session.scalars(stmt))


def audit_counts(session: Session, round_id: int) -> tuple[int, int, int]:
    """(sampled, answered, wrong) of a round's audit: its queries of purpose ``audit``, those with a human
    label, and those whose human label (the hard class) differs from the item's auto-label."""
    wrong = case((HumanLabel.label != AutoLabel.label, 1), else_=0)
    stmt = (
        select(func.count(LabelQuery.id), func.count(HumanLabel.id), func.coalesce(func.sum(wrong), 0))
        .select_from(LabelQuery)
        .outerjoin(HumanLabel, HumanLabel.item_id == LabelQuery.item_id)
        .outerjoin(
            AutoLabel,
            (AutoLabel.item_id == LabelQuery.item_id) & (AutoLabel.project_id == LabelQuery.project_id),
        )
        .where(LabelQuery.round_id == round_id, LabelQuery.purpose == "audit")
    )
    sampled, answered, n_wrong = session.execute(stmt).one()
    return int(sampled), int(answered), int(n_wrong)


def delta_spent(session: Session, project_id: int) -> float:
    """Σ of the δ shares (the round report's ``delta_round``) the project's succeeded rounds were tested at
    (:mod:`tbal.plan` caps the next share by δ minus this)."""
    return _sum_over_reports(session, project_id, lambda report: report.delta_round)


def _sum_over_reports(
    session: Session, project_id: int, value: Callable[[RoundReport], float | None]
) -> float:
    """Σ of ``value`` over the reports of the project's succeeded rounds (None counts 0)."""
    stmt = select(Round.metrics).where(Round.project_id == project_id, Round.status == "succeeded")
    total = 0.0
    for metrics in session.scalars(stmt):
        x = value(RoundReport.from_dict(metrics)) if metrics else None
        if x is not None:
            total += float(x)
    return total


def labeled_items(project_id: int, role: str) -> Select[int, bytes, int, list[float] | None]:
    """(id, data, label, distribution) of the human-labeled items of ``role``, by id."""
    return (
        select(Item.id, Item.data, HumanLabel.label, HumanLabel.distribution)
        .join(HumanLabel, HumanLabel.item_id == Item.id)
        .where(Item.project_id == project_id, Item.role == role)
        .order_by(Item.id)
    )


def auto_mistakes_spent(session: Session, project_id: int) -> float:
    """Σ of the mistake bounds (the round report's ``auto_mistakes_bound``) the project's succeeded rounds
    certified for their auto-labels (the ``dataset`` guarantee carries them to the next rounds)."""
    return _sum_over_reports(session, project_id, lambda report: report.auto_mistakes_bound)
