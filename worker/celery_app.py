"""The Celery application that runs rounds in worker processes (production: Redis broker, PostgreSQL).

``celery -A worker.celery_app worker`` (or ``tbal worker``) loads :data:`celery_app`, built from the
``TBAL_*`` environment by :func:`make_celery`; tests build their own with explicit settings.

What the configuration guarantees (Celery's task guide; the service issue):

- JSON messages only: a task message carries a round id, never arrays, pickles or ORM objects.
- ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged after the round
  function returns, so a worker that dies in the middle of a round leaves the message to be delivered
  again; the round function claims the round under a row lock, so a second delivery never runs it twice.
- ``worker_prefetch_multiplier = 1``: a worker reserves one round at a time (rounds are long; prefetching
  would park rounds behind a busy worker while another one idles).
- Time limits: the soft limit (``TBAL_ROUND_TIME_LIMIT_S``) raises inside the round, which marks it
  failed with a readable reason; the hard limit, a few minutes later, kills the process.
- The Redis ``visibility_timeout`` (how long an unacknowledged message waits before Redis hands it to
  another worker) is longer than the hard limit, so a long round is never delivered twice while it runs.
- A worker that starts, and then every ``reap_after_s`` / 4 seconds, marks failed the running rounds
  without a heartbeat for ``reap_after_s`` (3 × ``round_stale_after_s``, after a redelivered message had
  its chance to take the round over) (a whole worker killed with SIGKILL leaves its round "running" and its
  message unacknowledged for the visibility timeout); the API does the same for a project before it
  starts a round there.
- Two queues: ``gpu`` (rounds: training is the heavy part; CUDA where the worker has it) and ``default``.
  A worker started without ``-Q`` consumes both; a GPU machine runs ``tbal worker --queues gpu``.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from multiprocessing.process import AuthenticationString  # type: ignore[attr-defined]  # not in typeshed
from typing import Any

from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown, worker_ready, worker_shutdown
from kombu import Exchange, Queue
from sqlalchemy.orm import Session, sessionmaker

from app.rounds.dispatch import RUN_ROUND_TASK as ROUND_TASK_NAME
from app.settings import Settings, get_settings

logger = logging.getLogger(__name__)

RUN_ROUND_TASK = ROUND_TASK_NAME  # defined once, where rounds are sent (app.rounds.dispatch)
LABEL_STUDIO_SYNC_TASK = "tbal.label_studio_sync"
DEFAULT_QUEUE = "default"
GPU_QUEUE = "gpu"
QUEUES: tuple[str, ...] = (DEFAULT_QUEUE, GPU_QUEUE)

HARD_LIMIT_GRACE_S = 300
"""Seconds between the soft limit (the round marks itself failed) and the hard limit (process killed)."""
VISIBILITY_MARGIN_S = 3600
"""How much longer than the hard limit Redis waits before redelivering an unacknowledged message."""
EMBEDDED_BROKER = "memory://"
"""Broker when ``TBAL_BROKER_URL`` is unset: the embedded default runs rounds in the API process and
never sends a message; this only lets the module import (a worker on it would see no tasks)."""


class TBALCelery(Celery):
    """A Celery application that carries the service settings its tasks read.

    Tasks reach the database through :meth:`session_factory`, built on first use in the process that
    runs them (after the prefork pool has forked: an engine's connections must not cross a fork).
    """

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__("tbal", **kwargs)
        self.tbal_settings = settings
        self._session_factory: sessionmaker[Session] | None = None

    def session_factory(self) -> sessionmaker[Session]:
        """The process's session factory for ``tbal_settings.database_url`` (one engine per process)."""
        if self._session_factory is None:
            from app.db.session import make_engine, make_session_factory

            self._session_factory = make_session_factory(make_engine(self.tbal_settings))
        return self._session_factory

    def reset_session_factory(self) -> None:
        """Drop the engine (a forked child must not reuse its parent's connections)."""
        if self._session_factory is not None:
            engine = self._session_factory.kw.get("bind")
            if engine is not None:
                engine.dispose(close=False)
        self._session_factory = None


def time_limits(settings: Settings) -> tuple[float, float]:
    """(soft, hard) time limits of a round in seconds: soft = ``round_time_limit_s``, hard = soft + grace."""
    soft = float(settings.round_time_limit_s)
    return soft, soft + HARD_LIMIT_GRACE_S


def make_celery(settings: Settings | None = None) -> TBALCelery:
    """A Celery application configured from ``settings`` (the environment's when None).

    The broker is ``settings.broker_url`` (``memory://`` when unset); results are stored only when
    ``settings.result_backend`` is set (round state lives in the database, not in Celery results).
    """
    settings = settings if settings is not None else get_settings()
    soft, hard = time_limits(settings)
    app = TBALCelery(settings, include=["worker.tasks", "worker.label_studio", "worker.jobs"])
    app.conf.update(
        broker_url=settings.broker_url or EMBEDDED_BROKER,
        result_backend=settings.result_backend,
        task_ignore_result=settings.result_backend is None,
        # Serialisation: JSON only, in and out.
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        # Delivery: acknowledge after the work, one message reserved at a time, redeliver on a lost worker.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # A lost broker connection must not kill a running round: it finishes and writes its results;
        # its message, not acknowledged on the old connection, comes again and finds the round final.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        task_soft_time_limit=soft,
        task_time_limit=hard,
        broker_transport_options={"visibility_timeout": int(hard + VISIBILITY_MARGIN_S)},
        result_backend_transport_options={"visibility_timeout": int(hard + VISIBILITY_MARGIN_S)},
        broker_connection_retry_on_startup=True,
        # Queues and routes: rounds go to the queue the settings name (``gpu`` by default).
        task_default_queue=DEFAULT_QUEUE,
        task_queues=tuple(Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES),
        task_routes={RUN_ROUND_TASK: {"queue": settings.round_queue, "routing_key": settings.round_queue}},
        task_track_started=False,
        worker_send_task_events=False,
        enable_utc=True,
        timezone="UTC",
        # Label Studio sync on a schedule (celery beat; the embedded default runs a timer instead).
        beat_schedule=(
            {
                "label-studio-sync": {
                    "task": LABEL_STUDIO_SYNC_TASK,
                    "schedule": settings.label_studio_sync_interval_s,
                    "options": {"queue": DEFAULT_QUEUE, "expires": settings.label_studio_sync_interval_s},
                }
            }
            if settings.label_studio_sync_interval_s > 0
            else {}
        ),
    )
    return app


celery_app: TBALCelery = make_celery()
"""What ``celery -A worker.celery_app`` and ``tbal worker`` run (from the ``TBAL_*`` environment)."""


def _reset_after_fork(**_kwargs: Any) -> None:
    celery_app.reset_session_factory()


# A prefork child inherits the parent's memory: start it without the parent's database connections.
worker_process_init.connect(_reset_after_fork, weak=False)


def _allow_ingest_processes(**_kwargs: Any) -> None:
    """Let a prefork child start the ingest jobs' pool of decoding processes (``app.items.processes``).
    billiard makes itself multiprocessing's current process in the child, marked daemonic and with its
    own key type, and multiprocessing then refuses to start a process ("daemonic processes are not
    allowed to have children"; "Pickling an AuthenticationString object is disallowed"): the jobs would
    decode on their own thread. What the daemon flag protects (children left behind) is handled: the
    child stops its pool before it exits (below), and the pool's workers exit with it when it is
    killed. The setter refuses a started process, so the flag is set in its config."""
    config: dict[str, Any] = getattr(multiprocessing.current_process(), "_config", {})
    config["daemon"] = False
    config["authkey"] = AuthenticationString(bytes(multiprocessing.current_process().authkey))


worker_process_init.connect(_allow_ingest_processes, weak=False)


def _stop_ingest_processes(**_kwargs: Any) -> None:
    """A prefork child that ran ingest jobs stops its pool of decoding processes before it exits (its
    exit skips ``atexit``); started on first use in the child, never in the main process (a child must
    not share its parent's pool)."""
    from app.items.processes import shutdown

    shutdown()


worker_process_shutdown.connect(_stop_ingest_processes, weak=False)


def reap_stale_rounds_on_start(sender: Any = None, **_kwargs: Any) -> list[int]:
    """At worker start: mark failed the rounds whose worker died (see
    :func:`app.rounds.liveness.reap_stale_rounds`). Best effort: the database may be away."""
    from app.db.session import make_engine, make_session_factory
    from app.rounds.liveness import reap_stale_rounds

    app = getattr(sender, "app", None)
    settings = app.tbal_settings if isinstance(app, TBALCelery) else celery_app.tbal_settings
    engine = make_engine(settings)  # its own engine, disposed: nothing crosses into the pool processes
    try:
        with make_session_factory(engine)() as session:
            return reap_stale_rounds(session, settings)
    except Exception as exc:
        logger.warning("could not look for rounds whose worker died: %s", exc)
        return []
    finally:
        engine.dispose()


class Reaper(threading.Thread):
    """In the worker's main process: :func:`reap_stale_rounds_on_start` every ``interval_s`` seconds, so
    that a dead worker's round is marked failed even when no worker restarts and nobody asks for a
    round (each pass opens and closes its own engine: nothing is held across the pool's forks)."""

    def __init__(self, sender: Any, interval_s: float) -> None:
        super().__init__(name="tbal-reaper", daemon=True)
        self._sender = sender
        self.interval_s = interval_s
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            reap_stale_rounds_on_start(self._sender)

    def stop(self) -> None:
        self._stop_event.set()


_reapers: list[Reaper] = []


def _on_worker_ready(sender: Any = None, **kwargs: Any) -> None:
    reap_stale_rounds_on_start(sender, **kwargs)
    app = getattr(sender, "app", None)
    settings = app.tbal_settings if isinstance(app, TBALCelery) else celery_app.tbal_settings
    reaper = Reaper(sender, max(1.0, settings.reap_after_s / 4))
    reaper.start()
    _reapers.append(reaper)


def _on_worker_shutdown(**_kwargs: Any) -> None:
    while _reapers:
        _reapers.pop().stop()


worker_ready.connect(_on_worker_ready, weak=False)
worker_shutdown.connect(_on_worker_shutdown, weak=False)
