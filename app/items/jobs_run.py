"""Running an ingest job: the same function in the API process (embedded default) and in a Celery worker.

1. Claim the job under a row lock: a job already final, or running elsewhere with a fresh heartbeat, is
   left alone (a message delivered twice runs it once).
2. Batch by batch (whole staged chunks of items, in upload order: :mod:`app.items.jobs_chunks`; at least
   ``ingest_job_batch`` items at first, more for a cheap encoder: see :class:`BatchSize`): check each
   item, encode the texts (or decode the images, and run the backbone) of those whose external id is
   new, then in one transaction: delete the batch's staged chunks, add its counts and per-item errors
   to the job, write the new items (features, text, ground truth), commit. Every item is stored whole
   or not at all; a job that stops in the middle resumes with the chunks still staged, and an item
   stored already is skipped by its external id, so a retried job never duplicates anything. The
   project's validation and seed sets are drawn once, when the job ends, from everything stored (per
   batch would redraw them each time).
   The batches overlap: one is encoded on the job's encoding thread while the job's own thread reads
   and checks the next one and writes the one before (torch and Pillow release the GIL for much of their
   work, the database drivers while the database works; the hashing encoder's tokenizer does not), in
   the same order and with the same transactions as one after another. The encoding thread touches no
   database. Image files and the texts of a cheap encoder (``hashing``) are decoded / encoded on the
   process's pool of worker processes (:mod:`app.items.processes`, ``TBAL_INGEST_PROCESSES``), which
   the encoding thread waits for: the same arrays, errors and order as on the thread, without its GIL.
3. When nothing is staged any more (the batches are read once more from the start while another runner
   of the job left part of a batch it took): succeeded. An error that is not about one item (the encoder
   cannot be loaded, the backbone refuses the shape) fails the job with its reason; a database that went
   away gives the job back (queued) for the retry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

import numpy as np
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.db.base import utcnow
from app.db.models import Project
from app.errors import DomainError, Invalid
from app.items import jobs_repository as jobs_repo
from app.items import repository as items_repo
from app.items.arrays import layout_of
from app.items.jobs_repository import Staged
from app.items.processes import pool_size
from app.items.raw.checks import check_id
from app.items.raw.encoders import service_device, text_encoder
from app.items.raw.images import decode_files, image_target, image_truth, store_images
from app.items.raw.texts import check_text_item, encode_items, write_texts
from app.items.schemas import IngestResult
from app.labels.queue_service import draw_deferred, redraw_open_sets
from app.settings import Settings

logger = logging.getLogger(__name__)

MAX_JOB_ERRORS = 1_000
"""Per-item errors kept in the job row (``n_errors`` counts them all)."""
GIVE_BACK_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError)
"""The database went away: the job is given back (queued) and the error raised for a retry."""

BATCH_S = 0.05
"""Batches grow to about this much encoding time (see :class:`BatchSize`)."""
MAX_BATCH_ITEMS = 16_384
MAX_BATCH_BYTES = 64 << 20
"""Most bytes of raw items plus their encoded rows in a batch that grew (two batches are in memory)."""


@dataclass
class Prepared:
    """One batch, checked and encoded, ready to write: the new items and what happened to the others."""

    seqs: list[int]
    chunks: list[int] = field(default_factory=list)  # the staged chunks it came from (their seq)
    raw_bytes: int = 0  # about: characters of its texts, bytes of its files (for the batch size)
    pending: list[Any] = field(default_factory=list)  # checked new items, to encode
    ids: list[str] = field(default_factory=list)
    payload: Any = None  # texts and their features, or decoded pixels
    truth: list[int] = field(default_factory=list)
    known: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def refuse(self, seq: int, item: str, reason: str) -> None:
        self.errors.append({"index": seq, "item": str(item)[:255], "reason": reason})


class BatchSize:
    """How many staged items the job reads at a time: ``ingest_job_batch`` at first, then as many as
    encode in about :data:`BATCH_S` (judged by the batch just encoded), up to :data:`MAX_BATCH_ITEMS`
    and :data:`MAX_BATCH_BYTES`, never fewer than at first and never shrinking.

    A batch has fixed costs beside its items (the job row locked and updated, the id lookup, two
    commits: a few ms on SQLite), which a cheap encoder (hashing: ~20 µs a sentence; a 32×32 PNG:
    ~0.1 ms) would otherwise pay every 512 items; a slow one (MiniLM on a CPU: ~30 ms a sentence)
    keeps the operator's size, and with it the job's progress steps and the work a crash loses.
    Not much more than that, though: a batch is written while the next one is encoded, and the writes
    release the GIL (one statement a table on SQLite: :func:`app.items.repository.insert_chunk`), so
    batches of ~50 ms keep both going, where one large batch is encoded first and then written with
    nothing beside it (20,000 hashed sentences grew to one batch of ~14,000 at 0.25 s; BENCHMARKS.md,
    "Raw uploads through ingest jobs")."""

    def __init__(self, first: int, row_bytes: int) -> None:
        self.items = first
        self.row_bytes = row_bytes

    def saw(self, batch: Prepared, encode_s: float) -> None:
        """Grow after ``batch`` took ``encode_s`` to encode (a batch of known items takes ~0: the most)."""
        n = len(batch.seqs)
        per_item = batch.raw_bytes / n + self.row_bytes
        fits = int(MAX_BATCH_BYTES // max(per_item, 1.0))
        wanted = int(n * BATCH_S / max(encode_s, 1e-6))
        self.items = max(self.items, min(wanted, MAX_BATCH_ITEMS, fits))


class Kind(Protocol):
    """What a job does with its items: check them and find the known ones (reads), encode the new ones
    (no database, on another thread: no transaction stays open, SQLite's BEGIN IMMEDIATE would block
    every other request), write them. ``row_bytes``: the size of an encoded item."""

    row_bytes: int

    def check(self, session: Session, rows: Sequence[Staged]) -> Prepared: ...

    def encode(self, batch: Prepared) -> None: ...

    def write(self, session: Session, batch: Prepared, chunk_rows: int) -> IngestResult: ...


def execute_job(job_id: int, factory: sessionmaker[Session], settings: Settings) -> str | None:
    """Run job ``job_id`` to its end (see the module docstring); returns its status afterwards ("running":
    another runner holds it; None: no such job)."""
    with factory() as session:
        if not _claim(session, job_id, settings):
            job = jobs_repo.get(session, job_id)
            return None if job is None else job.status
        try:
            _run_batches(session, job_id, settings)
        except GIVE_BACK_ERRORS:
            session.rollback()
            _give_back(session, job_id)
            raise
        except DomainError as exc:
            session.rollback()
            fail(session, job_id, f"{exc.field}: {exc.reason}")
        except Exception as exc:
            session.rollback()
            logger.exception("ingest job %s failed", job_id)
            fail(session, job_id, f"{type(exc).__name__}: {exc}")
        job = jobs_repo.get(session, job_id)
        return None if job is None else job.status


def _claim(session: Session, job_id: int, settings: Settings) -> bool:
    job = jobs_repo.lock(session, job_id)
    now = utcnow()
    fresh = now - timedelta(seconds=settings.round_stale_after_s)
    if job is None or job.status in ("succeeded", "failed"):
        session.rollback()
        return False
    if job.status == "running" and job.heartbeat_at is not None and job.heartbeat_at > fresh:
        session.rollback()  # another runner holds it (a second delivery of its message)
        return False
    job.status = "running"
    job.attempts += 1
    job.started_at = job.started_at or now
    job.heartbeat_at = now
    session.commit()
    return True


def _give_back(session: Session, job_id: int) -> None:
    """Best effort: the job queued again, so that the retry claims it at once."""
    try:
        job = jobs_repo.lock(session, job_id)
        if job is not None and job.status == "running":
            job.status = "queued"
        session.commit()
    except Exception as exc:
        session.rollback()
        logger.warning("ingest job %s: could not give it back (%s); it is taken over once stale", job_id, exc)


def _run_batches(session: Session, job_id: int, settings: Settings) -> None:
    job = jobs_repo.get(session, job_id)
    assert job is not None  # claimed just before
    project = session.get(Project, job.project_id)
    if project is None:
        return
    session.commit()  # no transaction stays open while the encoder loads
    kind: Kind = TextKind(project, settings) if job.kind == "texts" else ImageKind(project, settings)
    size = BatchSize(settings.ingest_job_batch, kind.row_bytes)
    encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ingest-job-{job_id}")
    try:
        while True:
            if not _pipeline(session, job_id, kind, settings, size, encoder):
                return
            left = jobs_repo.any_staged(session, job_id)
            session.commit()
            if not left:  # else: another runner took part of a batch, and what it left is read again
                break
    finally:  # after an error: waits for the batch being encoded, drops one not started
        encoder.shutdown(cancel_futures=True)
    job = jobs_repo.lock(session, job_id)
    if job is not None and job.status == "running":
        job.status = "succeeded"
        job.finished_at = utcnow()
        if job.inserted:
            redraw_open_sets(session, project)
    session.commit()


def _pipeline(
    session: Session,
    job_id: int,
    kind: Kind,
    settings: Settings,
    size: BatchSize,
    encoder: ThreadPoolExecutor,
) -> bool:
    """Read, encode and write every batch, one being encoded while the next is read and the one before
    is written; False when the job stopped being ours."""
    batch = _read(session, job_id, kind, size.items, after=-1)
    encoding = encoder.submit(_encode, kind, batch) if batch is not None else None
    while batch is not None and encoding is not None:
        following = _read(session, job_id, kind, size.items, after=batch.chunks[-1])
        size.saw(batch, encoding.result())
        encoding = encoder.submit(_encode, kind, following) if following is not None else None
        with draw_deferred():  # the validation and seed sets are drawn once, from the whole upload
            if not _write(session, job_id, batch, kind, settings):
                return False
        batch = following
    return True


def _read(session: Session, job_id: int, kind: Kind, limit: int, after: int) -> Prepared | None:
    """The next staged chunks after chunk ``after`` (``limit`` items or more), their items checked (None:
    none left); the transaction ends here."""
    chunks = jobs_repo.next_batch(session, job_id, limit, after=after)
    batch = None
    if chunks:
        batch = kind.check(session, [item for chunk in chunks for item in chunk.items])
        batch.chunks = [chunk.seq for chunk in chunks]
    session.commit()  # nothing stays open while the batch is encoded
    return batch


def _keep_new(
    session: Session, project: Project, batch: Prepared, checked: Sequence[tuple[Any, ...]]
) -> None:
    """``batch.pending``: the ``checked`` items (seq, external id, ...) whose external id the project does
    not hold yet (a retried job skips what it stored); ``batch.known``: how many it held."""
    known = items_repo.ids_by_external(session, project.id, [c[1] for c in checked])
    batch.pending = [c for c in checked if c[1] not in known]
    batch.known = len(checked) - len(batch.pending)


def _encode(kind: Kind, batch: Prepared) -> float:
    """Encode ``batch`` (on the encoding thread); the seconds it took."""
    start = time.perf_counter()
    kind.encode(batch)
    return time.perf_counter() - start


def _write(session: Session, job_id: int, batch: Prepared, kind: Kind, settings: Settings) -> bool:
    """Store one batch and its bookkeeping in one transaction; False when the job is no longer ours (failed
    or deleted meanwhile)."""
    job = jobs_repo.lock(session, job_id)
    if job is None or job.status != "running":
        session.rollback()
        return False
    if jobs_repo.take(session, job_id, batch.chunks) != len(batch.chunks):
        session.rollback()  # another runner stored this batch first: go on with what is left
        return True
    new_truth = sum(1 for t in batch.truth if t >= 0)
    job.done += len(batch.seqs)
    job.inserted += len(batch.ids)
    job.skipped += batch.known
    job.ground_truth_added += new_truth
    job.n_errors += len(batch.errors)
    job.errors = [*(job.errors or []), *batch.errors][:MAX_JOB_ERRORS]
    job.heartbeat_at = utcnow()
    result = kind.write(session, batch, settings.ingest_chunk_rows)  # commits
    if result.inserted != len(batch.ids):  # another writer stored some of these ids in between
        job = jobs_repo.lock(session, job_id)
        if job is not None:
            job.inserted -= len(batch.ids) - result.inserted
            job.skipped += len(batch.ids) - result.inserted
            job.ground_truth_added -= new_truth - result.ground_truth_added
        session.commit()
    return True


class TextKind:
    """Texts: checked (id, text, class), encoded by the project's encoder."""

    def __init__(self, project: Project, settings: Settings) -> None:
        self.project = project
        self.shape = layout_of(project).shape  # the encoding thread reads no ORM attribute
        self.row_bytes = 4 * int(np.prod(self.shape))
        self.encoder = text_encoder(project.settings, device=service_device(settings.train_device))
        self.processes = pool_size(settings.ingest_processes)

    def check(self, session: Session, rows: Sequence[Staged]) -> Prepared:
        batch = Prepared(seqs=[r.seq for r in rows])
        checked: list[tuple[int, str, str, int]] = []
        for seq, ext, text, _data, label in rows:
            text = text or ""
            batch.raw_bytes += len(text)
            try:
                truth = check_text_item(self.project, seq, ext, text, label)
            except Invalid as exc:
                batch.refuse(seq, ext, exc.reason)
                continue
            checked.append((seq, ext, text, truth))
        _keep_new(session, self.project, batch, checked)
        return batch

    def encode(self, batch: Prepared) -> None:
        """The new texts' features, all at once; when the encoder refuses the batch, one by one, so that
        only the texts it refuses become errors (a wrong feature size fails the job). On the worker
        processes for a cheap encoder (:func:`app.items.raw.texts.encode_items`)."""
        items = batch.pending
        X, problems = encode_items([c[2] for c in items], self.encoder, self.shape, self.processes)
        kept = []
        for item, problem in zip(items, problems, strict=True):
            if problem is None:
                kept.append(item)
            else:
                batch.refuse(item[0], item[1], problem)
        batch.ids = [c[1] for c in kept]
        batch.truth = [c[3] for c in kept]
        batch.payload = ([c[2] for c in kept], X)

    def write(self, session: Session, batch: Prepared, chunk_rows: int) -> IngestResult:
        texts, X = batch.payload
        truth = np.array(batch.truth, dtype=np.int64)
        return write_texts(session, self.project, batch.ids, texts, X, truth, chunk_rows)


class ImageKind:
    """Image files: checked (id, class), decoded to the project's shape (and run through its backbone)."""

    def __init__(self, project: Project, settings: Settings) -> None:
        self.project = project
        self.processes = pool_size(settings.ingest_processes)
        self.backbone, self.shape = image_target(project)
        out = self.backbone.dim * 4 if self.backbone is not None else int(np.prod(self.shape))
        self.row_bytes = int(np.prod(self.shape)) + out  # the decoded pixels, then what is stored

    def check(self, session: Session, rows: Sequence[Staged]) -> Prepared:
        batch = Prepared(seqs=[r.seq for r in rows])
        checked: list[tuple[int, str, bytes, int]] = []
        for seq, ext, _text, data, label in rows:
            batch.raw_bytes += len(data or b"")
            try:
                check_id(ext, f"files.{ext}")
                checked.append((seq, ext, data or b"", image_truth(self.project, ext, label)))
            except Invalid as exc:
                batch.refuse(seq, ext, exc.reason)
        _keep_new(session, self.project, batch, checked)
        return batch

    def encode(self, batch: Prepared) -> None:
        new = batch.pending
        pixels, problems = decode_files([c[2] for c in new], self.shape, self.processes)
        for (seq, ext, _data, _t), problem in zip(new, problems, strict=True):
            if problem is not None:
                batch.refuse(seq, ext, problem)
        good = [i for i, problem in enumerate(problems) if problem is None]
        batch.ids = [new[i][1] for i in good]
        batch.truth = [new[i][3] for i in good]
        kept = pixels[good]
        batch.payload = self.backbone.encode(kept) if self.backbone is not None else kept

    def write(self, session: Session, batch: Prepared, chunk_rows: int) -> IngestResult:
        truth = np.array(batch.truth, dtype=np.int64)
        return store_images(session, self.project, None, batch.payload, batch.ids, truth, chunk_rows)


def fail(session: Session, job_id: int, reason: str) -> None:
    """Mark a job failed with ``reason`` and drop its staged items (the items it stored stay), committed."""
    job = jobs_repo.lock(session, job_id)
    if job is None:
        return
    job.status = "failed"
    job.reason = reason[:4000]
    job.finished_at = utcnow()
    jobs_repo.drop_staged(session, job_id)
    project = session.get(Project, job.project_id)
    if job.inserted and project is not None:  # what it stored before it stopped joins the draw
        redraw_open_sets(session, project)
    session.commit()
