"""``tbal.ingest_job(job_id)``: an ingest job (a large raw upload encoded / decoded in batches; see
:mod:`app.items.jobs_run`), sent by the API to the ``gpu`` queue (CUDA when the worker has it: the encoders
follow ``TBAL_TRAIN_DEVICE``, ``auto`` by default).

The job function claims the job under a row lock and stores each batch with its bookkeeping in one
transaction, so a message delivered twice stores nothing twice. A delivery that finds the job running
elsewhere sends one delayed message that looks again once that runner's heartbeat would be stale (the
runner may have been killed), as rounds do. Transient errors (the database or the broker away) are
retried with backoff, like rounds; the job function gives the job back (queued) before they reach here.
"""

from __future__ import annotations

import logging

from celery import Task, shared_task

from app.items.jobs_service import INGEST_JOB_TASK
from worker.tasks import DURABLE_TASK, STALE_MARGIN_S, _tbal_app

logger = logging.getLogger(__name__)


@shared_task(name=INGEST_JOB_TASK, **DURABLE_TASK)
def ingest_job(self: Task, job_id: int) -> None:
    """Run ingest job ``job_id`` (idempotent; see the module docstring)."""
    if isinstance(job_id, bool) or not isinstance(job_id, int) or job_id <= 0:
        raise TypeError(f"{INGEST_JOB_TASK} expects a positive integer job id, got {job_id!r}")
    from app.items.jobs_run import execute_job

    app = _tbal_app(self.app)
    status = execute_job(job_id, app.session_factory(), app.tbal_settings)
    if status == "running":  # another delivery holds it: look again once its heartbeat would be stale
        countdown = float(app.tbal_settings.round_stale_after_s) + STALE_MARGIN_S
        logger.info("ingest job %d is running elsewhere; checking again in %.0f s", job_id, countdown)
        self.apply_async(args=[job_id], countdown=countdown)
