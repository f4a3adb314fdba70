"""Sending background work other than rounds (ingest jobs) through the application's round dispatcher
(:mod:`app.rounds.dispatch`), so that it runs where rounds run: on the embedded default in the same
in-process thread pool (``wait_idle`` then waits for it too), with a broker as a Celery task on a queue.

Only the dispatcher's public :meth:`~app.rounds.dispatch.Dispatcher.send_work` is used: each dispatcher
decides how (``InProcessDispatcher.submit``, ``CeleryDispatcher.send_task``), so nothing here asks which
dispatcher it holds. This module stays as the one name the callers use for sending work.
"""

from __future__ import annotations

from app.rounds.dispatch import Dispatcher, Work

__all__ = ["Work", "send"]


def send(dispatcher: Dispatcher, *, task: str, queue: str, work: Work, work_id: int) -> None:
    """Run ``work(work_id, ...)`` in the API process (embedded default) or send the Celery task ``task``
    with ``[work_id]`` to ``queue``; raises what the broker raises when it is away."""
    dispatcher.send_work(work, work_id, task=task, queue=queue)
