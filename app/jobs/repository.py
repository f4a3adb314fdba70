"""SQL of ingest jobs and their staged raw items.

The staged items are written and read in bulk without an ORM object a row (they are written once,
read once and deleted): the upload's rows by ``COPY`` (PostgreSQL) or ``executemany`` (SQLite) on the
driver's cursor, a batch read as plain tuples, and deleted by the range of ``seq`` it covers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from app.db.models import ACTIVE_JOB_STATUSES, IngestJob, IngestJobItem
from app.repositories.bulk import append_rows

STAGE_ROWS = 1_000
"""Staged items per ``executemany`` (images carry their bytes: a few MB per call)."""
STAGED = IngestJobItem.__table__
COLUMNS = ("job_id", "seq", "external_id", "text", "data", "label")


class Staged(NamedTuple):
    """One raw item of a job as the upload gave it (``seq``: its place in the upload, from 0)."""

    seq: int
    external_id: str
    text: str | None
    data: bytes | None
    label: Any  # a class name or index, None: unknown


def add(session: Session, project_id: int, kind: str, total: int) -> IngestJob:
    job = IngestJob(project_id=project_id, kind=kind, total=total, errors=[])
    session.add(job)
    session.flush()
    return job


def stage(session: Session, job_id: int, rows: Iterable[Staged]) -> None:
    """Write the job's raw items in the caller's transaction (:func:`app.repositories.bulk.append_rows`:
    ``COPY`` on PostgreSQL, ``executemany`` a 1,000 rows on SQLite). The label goes in as the JSON the
    column holds (``json.dumps``, NULL for None)."""
    values = (
        (job_id, r.seq, r.external_id, r.text, r.data, None if r.label is None else json.dumps(r.label))
        for r in rows
    )
    append_rows(session, "ingest_job_items", COLUMNS, values, per_call=STAGE_ROWS)


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


def next_batch(session: Session, job_id: int, limit: int, after: int = -1) -> list[Staged]:
    """The job's first ``limit`` items still staged with ``seq > after``, in upload order. They are all
    the staged items from the first one's ``seq`` to the last one's (see :func:`take`)."""
    query = (
        select(STAGED.c.seq, STAGED.c.external_id, STAGED.c.text, STAGED.c.data, STAGED.c.label)
        .where(STAGED.c.job_id == job_id, STAGED.c.seq > after)
        .order_by(STAGED.c.seq)
        .limit(limit)
    )
    return [Staged(*row) for row in session.execute(query)]


def take(session: Session, job_id: int, seqs: Sequence[int]) -> int:
    """Delete a batch that :func:`next_batch` read (its ``seqs``, ascending), in the transaction that
    stores it; how many of its items were still there (fewer: another runner of the job took them first).

    Deleted by its ``seq`` range: staged items are only ever deleted, never added to a job that exists,
    so the range holds this batch's items that are left and nothing else."""
    if not seqs:
        return 0
    in_range = IngestJobItem.seq.between(seqs[0], seqs[-1])
    result = session.execute(delete(IngestJobItem).where(IngestJobItem.job_id == job_id, in_range))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def any_staged(session: Session, job_id: int) -> bool:
    query = select(IngestJobItem.seq).where(IngestJobItem.job_id == job_id).limit(1)
    return session.scalar(query) is not None


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
