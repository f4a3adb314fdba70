"""Celery tasks: thin wrappers that take ids and call the service's round function.

``tbal.run_round(round_id)`` calls :func:`app.rounds.run.execute_round`, the same function the
embedded default runs in the API process. That function claims the round under a row lock (a round
already running elsewhere or already final is left alone), so a message delivered twice writes nothing
twice; it records stage, progress, metrics and failures in the round row, not on the task object. A
delivery that finds the round running elsewhere sends one delayed message to look again: if the holder
died (its heartbeat went stale), that message takes the round over, so a killed worker process never
leaves a round stuck in "running".

Only transient errors are retried here (the database or the broker unreachable for a while), with
exponential backoff and jitter; the round function gives the round back (status queued) before such an
error reaches the task, so the retry claims it at once. When the retries are spent, the round is marked
failed with the reason. An algorithm error is not an exception at this level: the round function marks
the round failed with a readable reason and returns.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc
from celery import Task, shared_task
from sqlalchemy import select

from worker.celery_app import RUN_ROUND_TASK, TBALCelery

logger = logging.getLogger(__name__)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,  # connection refused / dropped, SQLite "database is locked"
    sqlalchemy.exc.InterfaceError,  # a connection closed under us
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,
    ConnectionError,  # ConnectionRefusedError, ConnectionResetError, BrokenPipeError
)
"""Errors worth retrying: they say that a service underneath is away, not that the round is wrong."""

MAX_RETRIES = 8
RETRY_BACKOFF_S = 5
"""First retry after about 5 s, then 10, 20, ... (full jitter), at most :data:`RETRY_BACKOFF_MAX_S`."""
RETRY_BACKOFF_MAX_S = 600
DURABLE_TASK: dict[str, Any] = {
    "bind": True,
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": RETRY_BACKOFF_S,
    "retry_backoff_max": RETRY_BACKOFF_MAX_S,
    "retry_jitter": True,
    "max_retries": MAX_RETRIES,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "ignore_result": True,
}
"""Options of the tasks that run long work by id (rounds, ingest jobs): transient errors retried with
backoff, the message acknowledged after the work, redelivered when the worker is lost."""
STALE_MARGIN_S = 5.0
"""A round found running elsewhere is looked at again ``round_stale_after_s`` + this many seconds later."""


class RoundTask(Task):
    """Base of :func:`run_round`: when a transient error outlives the retries, mark the round failed."""

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        if not isinstance(exc, TRANSIENT_ERRORS) or not args:
            return
        round_id = args[0]
        if isinstance(round_id, bool) or not isinstance(round_id, int):
            return
        reason = f"gave up after {self.request.retries} retries: {type(exc).__name__}: {exc}"
        mark_failed(_tbal_app(self.app), round_id, reason)


def mark_failed(app: TBALCelery, round_id: int, reason: str) -> None:
    """Mark a queued round failed (best effort: the database may still be away; the round then stays
    queued and can be started again)."""
    from app.db.base import utcnow
    from app.rounds import repository as rounds_repo

    try:
        with app.session_factory()() as session:
            rounds_repo.fail(session, round_id, reason[:4000], utcnow())
            session.commit()
    except Exception as exc:
        logger.warning("round %d: could not mark it failed (%s): %s", round_id, reason, exc)
    else:
        logger.error("round %d failed: %s", round_id, reason)


@shared_task(name=RUN_ROUND_TASK, base=RoundTask, **DURABLE_TASK)
def run_round(self: Task, round_id: int) -> None:
    """Run round ``round_id`` (claim it, train, calibrate, threshold, auto-label, choose queries).

    Idempotent: a round that another delivery already finished is left as it is. A round that another
    delivery is running is watched: one new message checks it again once a heartbeat would have gone
    stale (``round_stale_after_s``), and takes the round over then if its runner died (a worker process
    killed mid-round gets its message redelivered at once, while the round still looks alive).
    """
    round_id = _check_round_id(round_id)
    from app.rounds.run import execute_round

    app = _tbal_app(self.app)
    logger.info("round %d: delivery %s (retry %d)", round_id, self.request.id, self.request.retries)
    execute_round(round_id, app.session_factory(), app.tbal_settings)
    _watch_if_running_elsewhere(self, app, round_id)


def _watch_if_running_elsewhere(task: Task, app: TBALCelery, round_id: int) -> None:
    """After the round function returned: if the round is still active, another delivery holds it;
    send one message that looks again when that holder's heartbeat would be stale."""
    from app.db.models import ACTIVE_ROUND_STATUSES, Round

    with app.session_factory()() as session:
        status = session.scalar(select(Round.status).where(Round.id == round_id))
    if status not in ACTIVE_ROUND_STATUSES:
        return
    countdown = float(app.tbal_settings.round_stale_after_s) + STALE_MARGIN_S
    logger.info("round %d is %s elsewhere; checking again in %.0f s", round_id, status, countdown)
    task.apply_async(args=[round_id], countdown=countdown)


def _check_round_id(round_id: Any) -> int:
    """Round ids arrive as JSON numbers; anything else is a caller's bug, not a transient error."""
    if isinstance(round_id, bool) or not isinstance(round_id, int) or round_id <= 0:
        raise TypeError(f"{RUN_ROUND_TASK} expects a positive integer round id, got {round_id!r}")
    return round_id


def _tbal_app(app: Any) -> TBALCelery:
    """The task's application with its settings (a plain Celery app gets the environment's)."""
    if isinstance(app, TBALCelery):
        return app
    from worker.celery_app import celery_app

    logger.warning("task bound to a non-tbal Celery app %r: using worker.celery_app's settings", app)
    return cast(TBALCelery, celery_app)
