"""Worker liveness: a running round's stage, progress and heartbeat (:class:`Progress`, a thread that
writes them to the round row), its time limit, and the reaper that marks failed the rounds whose worker
died (:func:`reap_stale_rounds`). Called by :func:`app.rounds.run.execute_round`, the worker's start and
``POST /rounds``."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from app.db.base import utcnow
from app.rounds import repository as rounds_repo
from app.settings import Settings

logger = logging.getLogger(__name__)

STAGE_WEIGHTS: dict[str, float] = {
    "load": 0.05,
    "train": 0.55,
    "calibrate": 0.15,
    "thresholds": 0.05,
    "auto-label": 0.1,
    "query": 0.05,
    "write": 0.05,
}


class RoundTimeLimit(Exception):
    """The round ran longer than ``settings.round_time_limit_s``."""


def reap_stale_rounds(session: Session, settings: Settings, *, project_id: int | None = None) -> list[int]:
    """Mark failed the running rounds (of ``project_id``, or all) whose heartbeat is older than
    ``settings.reap_after_s`` (3 × ``round_stale_after_s`` by default): their worker died (a whole worker
    killed leaves its message unacknowledged in the broker for the visibility timeout, hours), and a
    redelivered message, which takes a round over after ``round_stale_after_s``, had its chance.
    Commits; returns their ids.

    Called when a worker starts and before a round is started, so a dead round never blocks its project.
    Nothing of the dead round was written (results are written in one transaction at its end), and a
    late delivery of its message finds it final and does nothing.
    """
    now = utcnow()
    stale_before = now - timedelta(seconds=settings.reap_after_s)
    reason = (
        f"worker lost: no heartbeat for more than {settings.reap_after_s:g} s "
        "(marked failed; start a new round)"
    )
    ids = rounds_repo.fail_stale(session, stale_before, now, reason, project_id=project_id)
    session.commit()
    for round_id in ids:
        logger.warning("round %s: %s", round_id, reason)
    return ids


class Progress:
    """Stage and progress of a running round: the library reports them (cheap, in memory); a thread
    writes them to the round row at most every ``progress_interval_s`` and refreshes the heartbeat."""

    def __init__(self, round_id: int, token: str, factory: sessionmaker[Session], settings: Settings) -> None:
        self._round_id = round_id
        self._token = token
        self._factory = factory
        self._interval = max(0.05, settings.progress_interval_s)
        self._heartbeat_every = max(self._interval, min(30.0, settings.round_stale_after_s / 4))
        self._limit = settings.round_time_limit_s
        self._started = time.monotonic()
        self._stage = "load"
        self._fraction = 0.0
        self._dirty = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"tbal-progress-{round_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def report(self, stage: str, fraction: float) -> None:
        """The library's progress callback; also enforces the time limit."""
        elapsed = time.monotonic() - self._started
        if elapsed > self._limit:
            raise RoundTimeLimit(f"round ran {elapsed:.0f} s, over the limit of {self._limit:.0f} s")
        self._stage, self._fraction, self._dirty = stage, min(max(float(fraction), 0.0), 1.0), True

    def overall(self) -> float:
        done = 0.0
        for stage, weight in STAGE_WEIGHTS.items():
            if stage == self._stage:
                return min(1.0, done + weight * self._fraction)
            done += weight
        return min(1.0, done)

    def stop(self, *, flush: bool = False) -> None:
        """Stop the heartbeat thread; with ``flush``, write the last reported stage first (the round's
        row then says ``write`` while its results are written, not the stage before it)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        if flush and self._dirty:
            self._dirty = False
            self._flush()

    def _loop(self) -> None:
        last_write = 0.0
        while not self._stop.wait(self._interval):
            if self._dirty or time.monotonic() - last_write >= self._heartbeat_every:
                self._dirty = False
                self._flush()
                last_write = time.monotonic()

    def _flush(self) -> None:
        try:
            with self._factory() as session:
                rounds_repo.update_claimed(
                    session,
                    self._round_id,
                    self._token,
                    stage=self._stage,
                    progress=round(self.overall(), 4),
                    heartbeat_at=utcnow(),
                )
                session.commit()
        except Exception as exc:  # progress is best effort; the round goes on
            logger.warning("round %s: could not write progress: %s", self._round_id, exc)
