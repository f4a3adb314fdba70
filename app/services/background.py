"""Sending background work other than rounds through the application's round dispatcher
(:mod:`app.rounds.dispatch`), so that it runs where rounds run: on the embedded default in the same
in-process thread pool (``wait_idle`` then waits for it too), with a broker as a Celery task on a queue.

The dispatcher offers only ``enqueue_round``; this module reaches its pool and its Celery client instead
of building a second pool or a second client (app/rounds/ is not ours to change). Were the dispatcher to
grow a public ``submit(fn, *args)`` and ``send_task(name, args, queue)``, the two functions below would
be one line each, and ``InProcessDispatcher.enqueue_round`` could call the first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from app.rounds.dispatch import CeleryDispatcher, Dispatcher, InProcessDispatcher
from app.settings import Settings

logger = logging.getLogger(__name__)

Work = Callable[[int, sessionmaker[Session], Settings], object]
"""A piece of background work: called with an id, the session factory and the settings."""


def send(dispatcher: Dispatcher, *, task: str, queue: str, work: Work, work_id: int) -> None:
    """Run ``work(work_id, ...)`` in the API process (embedded default) or send the Celery task ``task``
    with ``[work_id]`` to ``queue``; raises what the broker raises when it is away."""
    if isinstance(dispatcher, InProcessDispatcher):
        _submit_in_process(dispatcher, work, work_id)
    elif isinstance(dispatcher, CeleryDispatcher):
        dispatcher._client().send_task(task, args=[work_id], queue=queue)
    else:  # a test double, or a dispatcher this module does not know: say so rather than drop the work
        raise TypeError(f"cannot send background work through a {type(dispatcher).__name__}")


def _submit_in_process(dispatcher: InProcessDispatcher, work: Work, work_id: int) -> None:
    def run() -> None:
        try:
            work(work_id, dispatcher._factory, dispatcher._settings)
        except Exception:  # the work's own row says what happened where it could be written
            logger.exception("background work %s(%s) stopped with an error", work.__name__, work_id)

    future = dispatcher._pool.submit(run)
    with dispatcher._lock:
        dispatcher._pending.add(future)
    future.add_done_callback(dispatcher._forget)
