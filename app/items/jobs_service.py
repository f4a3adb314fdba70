"""Accepting a large raw upload as an ingest job: the upload's structure is checked (as many ids as
texts, no id twice), its raw items (text, or image bytes, with the ground truth given) are written with
the job row in one transaction and committed, and the job is sent to run; the request answers then.
Each item's own problems (an empty text, an unknown class, an image that does not decode) are found by
the job and become its per-item errors.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from app.db.base import utcnow
from app.db.models import IngestJob, Project
from app.errors import NotFound, Unavailable
from app.items import jobs_repository as jobs_repo
from app.items.jobs_chunks import CHUNK_ITEMS, Staged
from app.items.jobs_run import execute_job, fail
from app.items.jobs_schemas import JobError, JobRead
from app.items.raw.archives import ImageFile
from app.items.raw.checks import require_kind
from app.items.raw.encoders import require_image_files
from app.items.raw.images import image_ids, image_labels
from app.items.raw.texts import Label, check_text_batch
from app.rounds.dispatch import Dispatcher

logger = logging.getLogger(__name__)

INGEST_JOB_TASK = "tbal.ingest_job"
"""The Celery task that runs a job (``worker.jobs`` registers it under this name)."""
JOB_QUEUE = "gpu"
"""Encoding is heavy work, like training: it goes where the GPUs are (CUDA when the worker has it)."""


def start_text_job(
    session: Session,
    project: Project,
    external_ids: Sequence[str],
    texts: Sequence[str],
    labels: Sequence[Label] | None,
    dispatcher: Dispatcher,
    *,
    chunk_items: int = CHUNK_ITEMS,
) -> JobRead:
    """Store texts as a job's raw items (staged in chunks of ``chunk_items``: the service gives its
    ``ingest_job_batch``, the job's first batch) and send the job (202: encoded in the background)."""
    require_kind(project, "text")
    check_text_batch(external_ids, texts, labels)
    given = labels if labels is not None else [None] * len(texts)
    rows = (
        Staged(i, ext, t, None, label)
        for i, (ext, t, label) in enumerate(zip(external_ids, texts, given, strict=True))
    )
    return _start(session, project, "texts", len(texts), rows, dispatcher, chunk_items)


def start_image_job(
    session: Session,
    project: Project,
    files: Sequence[ImageFile],
    dispatcher: Dispatcher,
    *,
    id_prefix: str = "",
    labels_from_folders: bool = False,
    labels: Sequence[Label] | None = None,
    chunk_items: int = CHUNK_ITEMS,
) -> JobRead:
    """Store image files as a job's raw items (as :func:`start_text_job` does) and send the job (decoded
    in the background)."""
    require_image_files(project)
    ids = image_ids(files, id_prefix)
    file_labels = image_labels(files, labels, labels_from_folders)
    rows = (
        Staged(i, ext, None, f.data, label)
        for i, (ext, f, label) in enumerate(zip(ids, files, file_labels, strict=True))
    )
    return _start(session, project, "images", len(files), rows, dispatcher, chunk_items)


def _start(
    session: Session,
    project: Project,
    kind: str,
    total: int,
    rows: Iterable[Staged],
    dispatcher: Dispatcher,
    chunk_items: int,
) -> JobRead:
    job = jobs_repo.add(session, project.id, kind, total)
    jobs_repo.stage(session, job.id, rows, chunk_items)
    session.commit()  # the raw data are stored: the job can run anywhere from here
    try:
        _send(dispatcher, job.id)
    except Exception as exc:  # broker down: the job cannot run, say so (nothing is left staged)
        logger.exception("could not enqueue ingest job %s", job.id)
        fail(session, job.id, f"could not enqueue: {exc}")
        raise Unavailable("broker", f"could not enqueue the ingest job: {exc}") from exc
    return job_read(job)


def get_job(session: Session, project: Project, job_id: int) -> IngestJob:
    job = jobs_repo.get(session, job_id)
    if job is None or job.project_id != project.id:
        raise NotFound("job_id", f"no ingest job {job_id} in project {project.id}")
    return job


def list_jobs(session: Session, project: Project, limit: int) -> list[IngestJob]:
    return jobs_repo.of_project(session, project.id, limit)


def job_read(job: IngestJob) -> JobRead:
    return JobRead(
        id=job.id,
        project_id=job.project_id,
        kind=job.kind,  # type: ignore[arg-type]
        status=job.status,  # type: ignore[arg-type]
        total=job.total,
        done=job.done,
        progress=job.done / job.total if job.total else 1.0,
        inserted=job.inserted,
        skipped=job.skipped,
        ground_truth_added=job.ground_truth_added,
        n_errors=job.n_errors,
        errors=[JobError(**e) for e in job.errors or []],
        reason=job.reason,
        attempts=job.attempts,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def resume_jobs(dispatcher: Dispatcher, factory: sessionmaker[Session], stale_after_s: float) -> list[int]:
    """Embedded default, at start-up: send again the jobs a previous process left queued, or running
    without a heartbeat for ``stale_after_s`` (best effort: the database may be away)."""
    try:
        with factory() as session:
            ids = jobs_repo.unfinished_ids(session, utcnow() - timedelta(seconds=stale_after_s))
    except Exception as exc:
        logger.warning("could not look for unfinished ingest jobs: %s", exc)
        return []
    for job_id in ids:
        logger.info("resuming ingest job %s", job_id)
        _send(dispatcher, job_id)
    return ids


def _send(dispatcher: Dispatcher, job_id: int) -> None:
    """Run the job where rounds run: in this process (embedded default) or as the Celery task
    ``INGEST_JOB_TASK`` on ``JOB_QUEUE``; raises what the broker raises when it is away."""
    dispatcher.send_work(execute_job, job_id, task=INGEST_JOB_TASK, queue=JOB_QUEUE)
