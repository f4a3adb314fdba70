"""Rounds whose worker died: a running round without a heartbeat for ``reap_after_s`` (3 ×
``round_stale_after_s``) is marked failed (when a worker starts, periodically in workers, and before a
round of its project is started), so that a new round can run; nothing of the dead
round is written, nothing is duplicated or lost, no human label changes.

The first tests use the SQLite stack of ``conftest``; the last kills a whole real ``tbal worker`` (its
main process and its pool, SIGKILL) in the middle of a round on PostgreSQL + Redis (must run under
``CI=true``).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import text, update
from sqlalchemy.orm import Session, sessionmaker

from app.db.base import utcnow
from app.db.models import Round
from app.db.session import make_engine, make_session_factory
from app.main import create_app
from app.projects.keys_service import create_key
from app.rounds.load import LoadedRound
from app.settings import Settings
from tests.e2e.conftest import (  # noqa: F401  (postgres_url, redis_url: fixtures)
    DIGITS_SETTINGS,
    digits_project_ready,
    postgres_url,
    redis_url,
    start_worker,
    stop_worker,
    worker_env,
)
from tests.in_process import as_httpx_client
from tests.worker.conftest import Client, queued_round, table_counts
from worker.celery_app import make_celery, reap_stale_rounds_on_start

STALE_AFTER_S = 5


def _pretend_running(factory: sessionmaker[Session], round_id: int, heartbeat_age_s: float) -> None:
    """The state a dead worker leaves: running, claimed, its last heartbeat ``heartbeat_age_s`` ago."""
    beat = utcnow() - timedelta(seconds=heartbeat_age_s)
    with factory() as session:
        session.execute(
            update(Round)
            .where(Round.id == round_id)
            .values(status="running", claim_token="dead", attempts=1, heartbeat_at=beat, started_at=beat)
        )
        session.commit()


def test_a_round_request_reaps_the_dead_round_of_its_project(
    client: Client, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    pid, rid = queued_round(client)
    _pretend_running(session_factory, rid, heartbeat_age_s=10)  # alive: its heartbeat is recent
    busy = client.post(f"/api/v1/projects/{pid}/rounds")
    assert busy.status_code == 409 and busy.json()["detail"]["field"] == "round"

    before = table_counts(session_factory)
    _pretend_running(session_factory, rid, heartbeat_age_s=settings.reap_after_s + 1)
    started = client.post(f"/api/v1/projects/{pid}/rounds")
    assert started.status_code == 202, started.text
    dead = client.get(f"/api/v1/rounds/{rid}").json()
    assert dead["status"] == "failed" and "worker lost" in dead["error"], dead
    assert dead["finished_at"] is not None
    after = table_counts(session_factory)
    assert after == {**before, "rounds": before["rounds"] + 1}  # only the new round was written


def test_a_starting_worker_reaps_dead_rounds_only(
    client: Client, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    _pid, dead = queued_round(client)
    _pid2, alive = queued_round(client)
    _pretend_running(session_factory, dead, heartbeat_age_s=settings.reap_after_s + 1)
    _pretend_running(session_factory, alive, heartbeat_age_s=settings.round_stale_after_s + 1)
    celery = make_celery(settings)
    try:
        reaped = reap_stale_rounds_on_start(sender=type("Consumer", (), {"app": celery})())
    finally:
        celery.close()
    assert reaped == [dead]
    assert client.get(f"/api/v1/rounds/{dead}").json()["status"] == "failed"
    assert client.get(f"/api/v1/rounds/{alive}").json()["status"] == "running"


def test_the_periodic_reaper_marks_a_dead_round_failed(
    client: Client, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    from worker.celery_app import Reaper

    _pid, rid = queued_round(client)
    fast = settings.model_copy(update={"round_stale_after_s": 1.0})  # reaped after 3 s
    celery = make_celery(fast)
    reaper = Reaper(type("Consumer", (), {"app": celery})(), interval_s=0.2)
    _pretend_running(session_factory, rid, heartbeat_age_s=0)
    reaper.start()
    try:
        deadline = time.monotonic() + 15
        status = "running"
        while status == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
            status = client.get(f"/api/v1/rounds/{rid}").json()["status"]
        waited = 15 - (deadline - time.monotonic())
    finally:
        reaper.stop()
        reaper.join(5)
        celery.close()
    assert status == "failed"
    assert waited >= 2.5, "marked failed before it was 3 s without a heartbeat"


def test_a_late_write_of_a_reaped_round_writes_nothing(
    client: Client, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    """A runner that was only slow (its heartbeat stale) and finishes after the reaper: claim lost."""
    from app.rounds.liveness import reap_stale_rounds
    from app.rounds.run import execute_round

    pid, rid = queued_round(client)
    # The runner claims the round, then the reaper marks it failed before it writes.
    import app.rounds.run as runner

    original = runner.load_round

    def slow_load(round_id: int, factory: sessionmaker[Session], settings: Settings) -> LoadedRound:
        loaded = original(round_id, factory, settings)
        with factory() as session:
            # One transaction: the row stays locked from the update to the reaper's commit, so the runner's
            # heartbeat thread cannot refresh it in between (it did, now and then, under load).
            session.execute(
                update(Round).where(Round.id == round_id).values(heartbeat_at=utcnow() - timedelta(hours=1))
            )
            assert reap_stale_rounds(session, settings) == [round_id]
        return loaded

    runner.load_round = slow_load
    try:
        execute_round(rid, session_factory, settings)
    finally:
        runner.load_round = original
    body = client.get(f"/api/v1/rounds/{rid}").json()
    assert body["status"] == "failed" and "worker lost" in body["error"]
    assert table_counts(session_factory)["auto_labels"] == 0
    assert client.get(f"/api/v1/projects/{pid}/auto-labels").json()["items"] == []


# --- A whole real worker killed mid-round (PostgreSQL + Redis) --------------------------------------


@pytest.fixture
def real_stack(
    postgres_url: str,  # noqa: F811
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> Iterator[tuple[httpx.Client, Settings, dict[str, str], sessionmaker[Session]]]:
    settings = Settings(
        database_url=postgres_url,
        broker_url=redis_url,
        artifacts_dir=tmp_path / "artifacts",
        train_device="cpu",
        torch_threads=1,
        db_pool_size=2,
        round_stale_after_s=STALE_AFTER_S,
        progress_interval_s=0.1,
    )
    env = worker_env(settings)
    engine = make_engine(settings)
    factory = make_session_factory(engine)
    _key, secret = create_key(factory, "stale-rounds")
    try:
        with TestClient(create_app(settings)) as http:
            http.headers["Authorization"] = f"Bearer {secret}"
            yield as_httpx_client(http), settings, env, factory
    finally:
        engine.dispose()
        # The killed worker's message stays unacknowledged for the visibility timeout: drop it, so that
        # later tests on this Redis database start from an idle broker.
        broker = redis.Redis.from_url(redis_url)
        broker.delete("unacked", "unacked_index", "gpu", "default")
        broker.close()


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_a_whole_worker_killed_mid_round_blocks_nothing_and_loses_nothing(
    real_stack: tuple[httpx.Client, Settings, dict[str, str], sessionmaker[Session]], tmp_path: Path
) -> None:
    from examples.demo import API, fetch_all, wait_round

    http, settings, env, factory = real_stack
    celery = make_celery(settings)
    log = tmp_path / "worker.log"
    worker = start_worker(env, log, celery)
    try:
        # uniform δ schedule: the round after the dead one may auto-label (the default: the last planned one)
        mechanics = {**DIGITS_SETTINGS, "delta_schedule": "uniform"}
        pid = digits_project_ready(http, f"digits-dead-{os.getpid()}", {**mechanics, "epochs": 3000})
        humans_before = _without_role(fetch_all(http, f"{API}/projects/{pid}/labels"))
        rid = http.post(f"{API}/projects/{pid}/rounds").json()["id"]
        deadline = time.monotonic() + 120
        while http.get(f"{API}/rounds/{rid}").json()["stage"] != "train":
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        os.killpg(worker.pid, signal.SIGKILL)  # the whole worker: main process and pool, no warning
        worker.wait(10)
    finally:
        stop_worker(worker)
    killed_at = time.monotonic()
    assert http.get(f"{API}/rounds/{rid}").json()["status"] == "running"
    # Until it is 3 × round_stale_after_s without a heartbeat the round may still be taken over: a new
    # one is refused.
    if time.monotonic() - killed_at < 3 * STALE_AFTER_S - 1:
        assert http.post(f"{API}/projects/{pid}/rounds").status_code == 409
    time.sleep(max(0.0, 3 * STALE_AFTER_S + 1 - (time.monotonic() - killed_at)))

    # A new worker starts: it marks the dead round failed.
    worker = start_worker(env, tmp_path / "worker2.log", celery)
    try:
        dead = http.get(f"{API}/rounds/{rid}").json()
        deadline = time.monotonic() + 30
        while dead["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
            dead = http.get(f"{API}/rounds/{rid}").json()
        assert dead["status"] == "failed" and "worker lost" in dead["error"], dead
        # A new round (short training now) runs to the end on the new worker.
        patched = http.patch(f"{API}/projects/{pid}", json={"settings": mechanics})
        assert patched.status_code == 200, patched.text
        started = http.post(f"{API}/projects/{pid}/rounds")
        assert started.status_code == 202, started.text
        done = wait_round(http, started.json()["id"], poll_s=0.3, timeout_s=300)
        assert done["status"] == "succeeded", f"{done}\n{(tmp_path / 'worker2.log').read_text()[-3000:]}"
    finally:
        stop_worker(worker)
        celery.close()

    auto = fetch_all(http, f"{API}/projects/{pid}/auto-labels")
    assert len(auto) == len({a["item_id"] for a in auto}) == done["metrics"]["auto_labeled"] > 0
    assert {a["round_id"] for a in auto} == {done["id"]}  # the dead round wrote nothing
    assert _without_role(fetch_all(http, f"{API}/projects/{pid}/labels")) == humans_before
    with factory() as session:
        both = session.execute(
            text(
                "SELECT count(*) FROM auto_labels a JOIN human_labels h ON h.item_id = a.item_id "
                "WHERE a.project_id = :p"
            ),
            {"p": pid},
        ).scalar_one()
    assert both == 0


def _without_role(labels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in label.items() if k != "role"} for label in labels]
