"""Sending rounds to be run: in the API process (the embedded default) or to Celery workers.

Both run :func:`app.rounds.run.execute_round`; only the round id travels. The Celery task's name,
:data:`RUN_ROUND_TASK`, is defined here once (the worker registers its task under it).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from app.settings import Settings

logger = logging.getLogger(__name__)

RUN_ROUND_TASK = "tbal.run_round"
ROUND_TASK = RUN_ROUND_TASK  # the name it had before


class Dispatcher(Protocol):
    """Sends a committed round to whatever runs rounds."""

    name: str

    def enqueue_round(self, round_id: int) -> None: ...

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

    def enqueue_round(self, round_id: int) -> None:
        future = self._pool.submit(self._run, round_id)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)

    def _run(self, round_id: int) -> None:
        from app.rounds.run import execute_round

        try:
            execute_round(round_id, self._factory, self._settings)
        except Exception:  # the round row says what happened where it could be written
            logger.exception("round %s stopped with an error", round_id)

    def ping(self) -> None:
        """Nothing to reach: rounds run in this process."""

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every enqueued round has finished (tests and the demo); False on timeout."""
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

    def enqueue_round(self, round_id: int) -> None:
        self._client().send_task(RUN_ROUND_TASK, args=[round_id], queue=self._settings.round_queue)

    def ping(self) -> None:
        """Open a connection to the broker (one try, ``broker_timeout_s`` at most); raise if it fails."""
        with self._client().connection_for_write() as connection:
            connection.ensure_connection(
                max_retries=1, interval_start=0, timeout=self._settings.broker_timeout_s
            )

    def close(self) -> None:
        if self._app is not None:
            self._app.close()


def make_dispatcher(settings: Settings, session_factory: sessionmaker[Session]) -> Dispatcher:
    if settings.broker_url:
        return CeleryDispatcher(settings)
    return InProcessDispatcher(session_factory, settings)
