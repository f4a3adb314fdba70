"""SQL of ingest jobs and their staged raw items."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.orm import Session

from app.db.models import ACTIVE_JOB_STATUSES, IngestJob, IngestJobItem

STAGE_ROWS = 1_000
"""Staged items per INSERT statement (images carry their bytes: a few MB per statement)."""


def add(session: Session, project_id: int, kind: str, total: int) -> IngestJob:
    job = IngestJob(project_id=project_id, kind=kind, total=total, errors=[])
    session.add(job)
    session.flush()
    return job


def stage(session: Session, job_id: int, rows: Sequence[dict[str, Any]]) -> None:
    """Write the job's raw items (``seq``, ``external_id``, ``text`` or ``data``, ``label``) in the
    caller's transaction."""
    for start in range(0, len(rows), STAGE_ROWS):
        part = [{"job_id": job_id, **row} for row in rows[start : start + STAGE_ROWS]]
        session.execute(insert(IngestJobItem), part)


def get(session: Session, job_id: int) -> IngestJob | None:
    return session.get(IngestJob, job_id)


def lock(session: Session, job_id: int) -> IngestJob | None:
    """The job row, locked until the transaction ends (PostgreSQL; SQLite serialises writers anyway)."""
    return session.scalar(
        select(IngestJob)
        .where(IngestJob.id == job_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def of_project(session: Session, project_id: int, limit: int) -> list[IngestJob]:
    """The project's latest jobs, newest first."""
    query = select(IngestJob).where(IngestJob.project_id == project_id).order_by(IngestJob.id.desc())
    return list(session.scalars(query.limit(limit)))


def next_batch(session: Session, job_id: int, limit: int) -> list[IngestJobItem]:
    """The job's first ``limit`` items still staged, in upload order."""
    query = select(IngestJobItem).where(IngestJobItem.job_id == job_id).order_by(IngestJobItem.seq)
    return list(session.scalars(query.limit(limit)))


def take(session: Session, job_id: int, seqs: Sequence[int]) -> int:
    """Delete staged items (in the transaction that stores them); how many were still there (fewer: another
    runner of the job took them first)."""
    result = session.execute(
        delete(IngestJobItem).where(IngestJobItem.job_id == job_id, IngestJobItem.seq.in_(list(seqs)))
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def drop_staged(session: Session, job_id: int) -> None:
    session.execute(delete(IngestJobItem).where(IngestJobItem.job_id == job_id))


def unfinished_ids(session: Session, stale_before: datetime) -> list[int]:
    """Jobs queued, or running without a heartbeat since ``stale_before`` (their runner died)."""
    query = select(IngestJob.id).where(
        IngestJob.status.in_(ACTIVE_JOB_STATUSES),
        or_(
            IngestJob.status == "queued",
            IngestJob.heartbeat_at.is_(None),
            IngestJob.heartbeat_at < stale_before,
        ),
    )
    return list(session.scalars(query.order_by(IngestJob.id)))
