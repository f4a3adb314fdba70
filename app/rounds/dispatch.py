"""Sending rounds, and other background work, to be run: in the API process (the embedded default) or
to Celery workers.

Both run :func:`app.rounds.run.execute_round`; only the round id travels. The Celery task's name,
:data:`RUN_ROUND_TASK`, is defined here once (the worker registers its task under it). Other work (ingest
jobs, :mod:`app.items.jobs_service`) goes the same way through :meth:`Dispatcher.send_work`, so that it
runs where rounds run; underneath, :meth:`InProcessDispatcher.submit` (the pool, tracked by ``wait_idle``)
and :meth:`CeleryDispatcher.send_task` (the Celery client) serve rounds and that work alike.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from app.settings import Settings

logger = logging.getLogger(__name__)

RUN_ROUND_TASK = "tbal.run_round"
ROUND_TASK = RUN_ROUND_TASK  # the name it had before

Work = Callable[[int, sessionmaker[Session], Settings], object]
"""Background work other than a round, run in process: called with an id, the session factory and the
settings (the Celery task that does the same work in a worker takes the id alone)."""


class Dispatcher(Protocol):
    """Sends a committed round, or other background work, to whatever runs rounds."""

    name: str

    def enqueue_round(self, round_id: int) -> None: ...

    def send_work(self, work: Work, work_id: int, *, task: str, queue: str) -> None:
        """Run ``work(work_id, session_factory, settings)`` where rounds run: in this process, or as the
        Celery task ``task`` with ``[work_id]`` on ``queue``; raises what the broker raises when away."""
        ...

    def ping(self) -> None:
        """Raise when rounds cannot be sent now (the broker is unreachable)."""
        ...

    def close(self) -> None: ...


class InProcessDispatcher:
    """A small thread pool in the API process (used when no broker is configured)."""

    name = "in-process"

    def __init__(self, session_factory: sessionmaker[Session], settings: Settings) -> None:
        self._factory = session_factory
        self._settings = settings
        self._pool = ThreadPoolExecutor(
            max_workers=settings.in_process_workers, thread_name_prefix="tbal-round"
        )
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., object], *args: object) -> Future[None]:
        """Run ``fn(*args)`` on the pool; :meth:`wait_idle` waits for it. An exception is logged, not kept:
        nobody reads the future of background work (its own row says what happened)."""
        future = self._pool.submit(_logged, fn, args)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)
        return future

    def enqueue_round(self, round_id: int) -> None:
        self.submit(self._run_round, round_id)

    def send_work(self, work: Work, work_id: int, *, task: str, queue: str) -> None:
        """In this process: ``task`` and ``queue`` name the Celery way and are not needed here."""
        self.submit(work, work_id, self._factory, self._settings)

    def _run_round(self, round_id: int) -> None:
        from app.rounds.run import execute_round  # deferred: it imports torch, the API need not

        execute_round(round_id, self._factory, self._settings)

    def ping(self) -> None:
        """Nothing to reach: rounds run in this process."""

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every round and piece of work submitted so far has finished (tests and the demo);
        False on timeout."""
        with self._lock:
            pending = list(self._pending)
        for future in pending:
            try:
                future.result(timeout=timeout)
            except TimeoutError:
                return False
        return True

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class CeleryDispatcher:
    """Sends ``tbal.run_round(round_id)`` to the Celery queue of ``settings.round_queue``.

    Builds its own small Celery client from the settings (it does not import ``worker/``)."""

    name = "celery"

    def __init__(self, settings: Settings) -> None:
        if not settings.broker_url:
            raise ValueError("CeleryDispatcher needs settings.broker_url")
        self._settings = settings
        self._app: Any = None

    def _client(self) -> Any:
        if self._app is None:
            from celery import Celery

            app = Celery("tbal-api", broker=self._settings.broker_url, backend=self._settings.result_backend)
            app.conf.update(task_serializer="json", accept_content=["json"], broker_connection_retry=False)
            # Bounded: with the broker away, a round request answers 503 within seconds, never hangs.
            timeout = self._settings.broker_timeout_s
            app.conf.broker_transport_options = {
                "max_retries": 2,
                "interval_start": 0,
                "interval_step": 0.5,
                "socket_connect_timeout": timeout,
                "socket_timeout": timeout,
            }
            self._app = app
        return self._app

    def send_task(self, name: str, args: Sequence[object], queue: str) -> None:
        """Send the Celery task ``name`` with ``args`` (JSON) to ``queue``; raises when the broker is away."""
        self._client().send_task(name, args=list(args), queue=queue)

    def enqueue_round(self, round_id: int) -> None:
        self.send_task(RUN_ROUND_TASK, [round_id], self._settings.round_queue)

    def send_work(self, work: Work, work_id: int, *, task: str, queue: str) -> None:
        """To a worker: only ``work_id`` travels; the worker's task ``task`` does what ``work`` does."""
        self.send_task(task, [work_id], queue)

    def ping(self) -> None:
        """Open a connection to the broker (one try, ``broker_timeout_s`` at most); raise if it fails."""
        with self._client().connection_for_write() as connection:
            connection.ensure_connection(
                max_retries=1, interval_start=0, timeout=self._settings.broker_timeout_s
            )

    def close(self) -> None:
        if self._app is not None:
            self._app.close()


def _logged(fn: Callable[..., object], args: tuple[object, ...]) -> None:
    try:
        fn(*args)
    except Exception:  # the round's or the job's row says what happened where it could be written
        # Named by the first argument (a round's or a job's id), never by all: the settings may follow.
        first = args[0] if args else ""
        logger.exception("background work %s(%s) stopped with an error", getattr(fn, "__name__", fn), first)


def make_dispatcher(settings: Settings, session_factory: sessionmaker[Session]) -> Dispatcher:
    if settings.broker_url:
        return CeleryDispatcher(settings)
    return InProcessDispatcher(session_factory, settings)
