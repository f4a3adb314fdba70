"""Two rounds requested at once for one project from two API processes (two real ``tbal serve``
processes on one PostgreSQL database): exactly one is accepted (202), the other gets 409, and the
database holds one round. Rounds go to a Redis queue that no worker reads (they stay queued).
Must run under ``CI=true``."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import text

from app.db.session import make_engine, make_session_factory
from app.projects.keys_service import create_key
from app.settings import Settings
from tests.app.conftest import blobs
from tests.e2e.conftest import ROOT, postgres_url, redis_url, service_env  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

PROJECTS = 6
START_S = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tbal.cli",
                "serve",
                "--no-migrate",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"tbal serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.kill()
    raise AssertionError(f"tbal serve did not answer within {START_S} s:\n{log.read_text()}")


@pytest.fixture
def two_apis(
    postgres_url: str,  # noqa: F811
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> Iterator[tuple[list[str], dict[str, str], str]]:
    env = service_env(
        TBAL_DATABASE_URL=postgres_url,
        TBAL_BROKER_URL=redis_url,
        TBAL_ARTIFACTS_DIR=str(tmp_path / "artifacts"),
        TBAL_DB_POOL_SIZE="4",
    )
    engine = make_engine(Settings(database_url=postgres_url))
    _key, secret = create_key(make_session_factory(engine), "two-apis")
    engine.dispose()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        bases = []
        for i in range(2):
            process, base = _serve(env, tmp_path / f"api{i}.log")
            processes.append(process)
            bases.append(base)
        yield bases, {"Authorization": f"Bearer {secret}"}, postgres_url
    finally:
        for process in processes:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        # The accepted rounds' messages must not reach the workers of later tests on this Redis database.
        broker = redis.Redis.from_url(redis_url)
        broker.delete("gpu", "default")
        broker.close()


def _ready_project(base: str, headers: dict[str, str], i: int) -> int:
    X, y = blobs(80, seed=i)
    created = httpx.post(
        f"{base}/api/v1/projects",
        headers=headers,
        json={
            "name": f"race{i}-{time.monotonic_ns()}",
            "classes": ["a", "b", "c"],
            "data_kind": "features",
            "input_shape": [4],
            "settings": {"validation_size": 20, "seed_size": 10, "label_budget": 30, "batch_size": 5},
        },
    )
    assert created.status_code == 201, created.text
    pid = int(created.json()["id"])
    items = [
        {"external_id": f"i{j}", "features": X[j].tolist(), "ground_truth": int(y[j])} for j in range(80)
    ]
    assert (
        httpx.post(f"{base}/api/v1/projects/{pid}/items", headers=headers, json={"items": items}).status_code
        == 200
    )
    assert httpx.post(f"{base}/api/v1/projects/{pid}/simulate", headers=headers).status_code == 200
    return pid


def _race(bases: list[str], headers: dict[str, str], pid: int) -> list[httpx.Response]:
    """POST a round of ``pid`` to both processes at the same instant (connections already open)."""
    barrier = threading.Barrier(2)
    answers: list[httpx.Response | None] = [None, None]

    def request(i: int) -> None:
        with httpx.Client(headers=headers, timeout=30) as client:
            client.get(f"{bases[i]}/health")
            barrier.wait()
            answers[i] = client.post(f"{bases[i]}/api/v1/projects/{pid}/rounds")

    threads = [threading.Thread(target=request, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(a is not None for a in answers), "a request did not finish"
    return [a for a in answers if a is not None]


def test_two_api_processes_start_one_round(two_apis: tuple[list[str], dict[str, str], str]) -> None:
    bases, headers, url = two_apis
    pids = [_ready_project(bases[0], headers, i) for i in range(PROJECTS)]
    for pid in pids:
        answers = _race(bases, headers, pid)
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [202, 409], [a.text for a in answers]
        refused = next(a for a in answers if a.status_code == 409)
        assert refused.json()["detail"]["field"] == "round"

    engine = make_engine(Settings(database_url=url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT project_id, count(*), min(status) FROM rounds "
                    "WHERE project_id = ANY(:p) GROUP BY project_id"
                ),
                {"p": pids},
            ).all()
    finally:
        engine.dispose()
    assert sorted(rows) == [(pid, 1, "queued") for pid in pids]
