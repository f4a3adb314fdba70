"""SQL of ingest jobs and their staged raw items.

The staged items are chunks of consecutive items, one row each (:mod:`app.items.jobs_chunks`), written and
read in bulk without an ORM object a row: the upload's chunks by binary ``COPY`` (PostgreSQL) or
``executemany`` (SQLite) on the driver's cursor, a batch of whole chunks read as plain tuples, and
deleted by the range of ``seq`` it covers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from app.db.bulk import append_rows
from app.db.models import ACTIVE_JOB_STATUSES, IngestJob, IngestJobChunk
from app.items.jobs_chunks import CHUNK_ITEMS, Staged, group, pack, unpack

STAGE_ROWS = 16
"""Chunks per ``executemany`` on SQLite (a chunk of images carries up to a few MB)."""
CHUNKS = IngestJobChunk.__table__
COLUMNS = ("job_id", "seq", "n", "data")
PG_TYPES = ("int8", "int4", "int4", "bytea")

__all__ = ["Chunk", "Staged"]


class Chunk(NamedTuple):
    """One staged chunk as read back: its ``seq`` (its first item's) and its items."""

    seq: int
    items: list[Staged]


def add(session: Session, project_id: int, kind: str, total: int) -> IngestJob:
    job = IngestJob(project_id=project_id, kind=kind, total=total, errors=[])
    session.add(job)
    session.flush()
    return job


def stage(session: Session, job_id: int, rows: Iterable[Staged], chunk_items: int = CHUNK_ITEMS) -> None:
    """Write the job's raw items (in upload order) in the caller's transaction, as chunks of at most
    ``chunk_items`` items (:func:`app.items.jobs_chunks.group`) by :func:`app.db.bulk.append_rows`
    (binary ``COPY`` on PostgreSQL, ``executemany`` on SQLite)."""
    values = ((job_id, part[0].seq, len(part), pack(part)) for part in group(rows, chunk_items))
    append_rows(
        session, IngestJobChunk.__tablename__, COLUMNS, values, pg_types=PG_TYPES, per_call=STAGE_ROWS
    )


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


def next_batch(session: Session, job_id: int, limit: int, after: int = -1) -> list[Chunk]:
    """The job's first staged chunks with ``seq > after``, in upload order: as few as hold ``limit``
    items, or all that are left. They are all the staged chunks from the first one's ``seq`` to the last
    one's (see :func:`take`)."""
    sizes = session.execute(
        select(CHUNKS.c.seq, CHUNKS.c.n)
        .where(CHUNKS.c.job_id == job_id, CHUNKS.c.seq > after)
        .order_by(CHUNKS.c.seq)
        .limit(limit)  # a chunk holds one item at least
    ).all()
    if not sizes:
        return []
    count = 0
    for last, n in sizes:  # noqa: B007 (the last chunk read is the one that filled the batch)
        count += n
        if count >= limit:
            break
    query = (
        select(CHUNKS.c.seq, CHUNKS.c.data)
        .where(CHUNKS.c.job_id == job_id, CHUNKS.c.seq.between(sizes[0][0], last))
        .order_by(CHUNKS.c.seq)
    )
    return [Chunk(seq, unpack(seq, data)) for seq, data in session.execute(query)]


def take(session: Session, job_id: int, chunks: Sequence[int]) -> int:
    """Delete the chunks (their ``seq``, ascending) of a batch that :func:`next_batch` read, in the
    transaction that stores its items; how many of them were still there (fewer: another runner of the
    job took them first).

    Deleted by their ``seq`` range: staged chunks are only ever deleted, never added to a job that
    exists, so the range holds this batch's chunks that are left and nothing else."""
    if not chunks:
        return 0
    in_range = IngestJobChunk.seq.between(chunks[0], chunks[-1])
    result = session.execute(delete(IngestJobChunk).where(IngestJobChunk.job_id == job_id, in_range))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def any_staged(session: Session, job_id: int) -> bool:
    query = select(IngestJobChunk.seq).where(IngestJobChunk.job_id == job_id).limit(1)
    return session.scalar(query) is not None


def drop_staged(session: Session, job_id: int) -> None:
    session.execute(delete(IngestJobChunk).where(IngestJobChunk.job_id == job_id))


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
