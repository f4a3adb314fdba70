"""Fixtures of the end-to-end tests: a fresh PostgreSQL database and a Redis database of their own.

PostgreSQL: ``TBAL_TEST_POSTGRES_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``)
is the admin connection; each test session creates ``tbal_e2e_<random>`` beside it, migrates it with
``tbal migrate`` and drops it afterwards.

Redis: ``TBAL_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379``). With a database number in the URL
that database is used (and flushed); without one, a free database (1..15, empty) is claimed with a marker
key so that two test runs at once never share a broker, and flushed after the run.

With ``CI=true`` both must be reachable (the tests fail otherwise); elsewhere the tests are skipped.

Also the production-shape helpers that tests/worker shares: a real ``tbal worker`` process started and
stopped, and a digits project made ready through the API.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.settings import Settings

if TYPE_CHECKING:
    import httpx

    from worker.celery_app import TBALCelery

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get("TBAL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TBAL_TEST_REDIS_URL", "redis://127.0.0.1:6379")
CLAIM_KEY = "tbal-e2e-claim"


def unavailable(reason: str) -> None:
    """Fail under CI (the services must be there), skip elsewhere."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def service_env(**values: str) -> dict[str, str]:
    """The environment of a child process: this one's without any TBAL_* variable, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TBAL_")}
    env.update(values)
    env.setdefault("PYTHONPATH", str(ROOT))
    return env


def worker_env(settings: Settings, *, db_pool_size: int = 2) -> dict[str, str]:
    """The environment of a `tbal worker` child with the services and round settings of the test's
    ``settings`` (device, torch threads, progress interval, stale-round and reaping timeouts) and its own
    smaller pool."""
    return service_env(
        TBAL_DATABASE_URL=settings.database_url,
        TBAL_BROKER_URL=str(settings.broker_url),
        TBAL_ARTIFACTS_DIR=str(settings.artifacts_dir),
        TBAL_TRAIN_DEVICE=settings.train_device,
        TBAL_TORCH_THREADS=str(settings.torch_threads or 1),
        TBAL_PROGRESS_INTERVAL_S=str(settings.progress_interval_s),
        TBAL_DB_POOL_SIZE=str(db_pool_size),
        TBAL_ROUND_STALE_AFTER_S=str(settings.round_stale_after_s),
        TBAL_ROUND_REAP_AFTER_S=str(settings.reap_after_s),
    )


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated database ``tbal_e2e_<random>``; dropped at the end of the session."""
    admin_url = make_url(POSTGRES_URL)
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        unavailable(f"PostgreSQL unreachable at {admin_url.render_as_string(hide_password=True)}: {exc}")
    name = f"tbal_e2e_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    try:
        migrated = subprocess.run(
            [sys.executable, "-m", "tbal.cli", "migrate"],
            env=service_env(TBAL_DATABASE_URL=url),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert migrated.returncode == 0, f"tbal migrate failed:\n{migrated.stdout}\n{migrated.stderr}"
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis database of this test run, empty at the start and flushed at the end."""
    import redis

    base = REDIS_URL.rstrip("/")
    try:
        probe = redis.Redis.from_url(base, socket_connect_timeout=3)
        probe.ping()
    except Exception as exc:
        unavailable(f"Redis unreachable at {base}: {exc}")
    token = uuid.uuid4().hex
    fixed = make_url_db(base)
    candidates = [fixed] if fixed is not None else list(range(1, 16))
    chosen: redis.Redis | None = None
    for db in candidates:
        client = redis.Redis.from_url(f"{strip_db(base)}/{db}", socket_connect_timeout=3)
        if fixed is None and client.dbsize() != 0:
            client.close()
            continue
        if client.set(CLAIM_KEY, token, nx=True, ex=3600) or fixed is not None:
            chosen = client
            break
        client.close()
    if chosen is None:
        unavailable(f"no empty Redis database (1..15) at {base}; set TBAL_TEST_REDIS_URL=redis://host:port/N")
        raise AssertionError("unreachable")
    db = chosen.connection_pool.connection_kwargs["db"]
    chosen.flushdb()
    chosen.set(CLAIM_KEY, token, ex=3600)
    try:
        yield f"{strip_db(base)}/{db}"
    finally:
        chosen.flushdb()
        chosen.close()


def make_url_db(url: str) -> int | None:
    """The database number in ``redis://host:port/N``, or None."""
    tail = url.split("://", 1)[-1]
    if "/" not in tail:
        return None
    path = tail.split("/", 1)[1].split("?")[0]
    return int(path) if path.isdigit() else None


def strip_db(url: str) -> str:
    scheme, _, tail = url.partition("://")
    return f"{scheme}://{tail.split('/', 1)[0]}"


EPSILON = 0.05
"""ε of the production-shape digits projects (tests/e2e and tests/worker/test_stale_rounds.py)."""
DIGITS_SETTINGS: dict[str, Any] = {
    "delta_schedule": "uniform",  # every round may auto-label (the default certifies in the last one)
    "epsilon": EPSILON,
    "delta": 0.05,
    "bound": "valid",
    "guarantee": "pooled",
    "model": "mlp",
    "hidden": [128, 32],
    "epochs": 25,
    "lr": 0.05,
    "confidence": "softmax",
    "validation_size": 500,
    "calibration_fraction": 0.1,
    "seed_size": 100,
    "label_budget": 300,
    "batch_size": 100,
}
WORKER_START_S = 90.0
"""How long a ``tbal worker`` may take to answer its first ping."""


def start_worker(env: dict[str, str], log_path: Path, celery: TBALCelery) -> subprocess.Popen[bytes]:
    """``tbal worker`` (prefork, two processes: two deliveries of one round can run at the same time)."""
    command = [sys.executable, "-m", "tbal.cli", "worker", "--queues", "default,gpu", "--concurrency", "2"]
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + WORKER_START_S
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise AssertionError(f"tbal worker exited with {worker.returncode}:\n{log_path.read_text()}")
        if celery.control.ping(timeout=1.0):
            return worker
        time.sleep(0.5)
    stop_worker(worker)
    raise AssertionError(f"tbal worker did not answer within {WORKER_START_S} s:\n{log_path.read_text()}")


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """Warm shutdown of the worker and its pool processes (its own process group), then kill."""
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)


def digits_project_ready(client: httpx.Client, name: str, settings: dict[str, Any]) -> int:
    """A digits project (``settings``) made through ``client``, its items uploaded and its first queue
    answered from their ground truth."""
    from examples.demo import API, load_digits_data, upload_items

    data = load_digits_data()
    created = client.post(
        f"{API}/projects",
        json={
            "name": name,
            "classes": data.classes,
            "data_kind": data.data_kind,
            "input_shape": data.input_shape,
            "settings": settings,
        },
    )
    assert created.status_code == 201, created.text
    pid = int(created.json()["id"])
    upload_items(client, pid, data)
    assert client.post(f"{API}/projects/{pid}/simulate").status_code == 200
    return pid
