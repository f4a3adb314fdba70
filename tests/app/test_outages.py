"""PostgreSQL or Redis unreachable for a while: the API answers 503 with a JSON reason within seconds
(never a hang, never a 500), and work resumes when they come back.

The API talks to the real PostgreSQL and Redis through TCP forwarders that the test cuts (open
connections closed, new ones refused) and restores. With ``CI=true`` both services must be there.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from app.db.session import make_engine, make_session_factory
from app.main import create_app
from app.projects.keys_service import create_key
from app.settings import Settings
from tests.app.conftest import blobs
from tests.app.tcp_proxy import TcpProxy
from tests.e2e.conftest import redis_url  # noqa: F401  (a Redis database of this test run)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

FAST_S = 8.0
"""Every answer during an outage comes within this (connect timeouts of 2 s, a few retries)."""

SETTINGS: dict[str, Any] = {
    "delta_schedule": "uniform",  # every round may auto-label (the default certifies in the last one)
    "epsilon": 0.2,
    "validation_size": 20,
    "seed_size": 10,
    "label_budget": 20,
    "batch_size": 5,
    "model": "mlp",
    "epochs": 2,
}


def _through(proxy: TcpProxy, url: str) -> str:
    return make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


@pytest.fixture
def outage_api(
    postgres_schema_url: str,
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> Iterator[tuple[TestClient, TcpProxy, TcpProxy, str]]:
    pg = make_url(postgres_schema_url)
    rd = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs
    with (
        TcpProxy((pg.host or "127.0.0.1", pg.port or 5432)) as pg_proxy,
        TcpProxy((rd["host"], rd["port"])) as redis_proxy,
    ):
        broker = f"redis://127.0.0.1:{redis_proxy.port}/{rd['db']}"
        settings = Settings(
            database_url=_through(pg_proxy, postgres_schema_url),
            broker_url=broker,
            artifacts_dir=tmp_path / "artifacts",
            db_connect_timeout_s=2,
            db_pool_size=2,
            db_pool_timeout_s=3,
            broker_timeout_s=2,
        )
        direct = make_engine(Settings(database_url=postgres_schema_url))
        _key, secret = create_key(make_session_factory(direct), "outages")
        direct.dispose()
        with TestClient(create_app(settings)) as client:
            client.headers["Authorization"] = f"Bearer {secret}"
            yield client, pg_proxy, redis_proxy, redis_url


def _timed(call: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    response = call()
    return response, time.perf_counter() - start


def _assert_unavailable(response: Any, elapsed: float, field: str) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0, response.headers
    assert elapsed < FAST_S, f"503 took {elapsed:.1f} s"
    detail = response.json()["detail"]
    assert detail["field"] == field and detail["reason"], detail


def _ready_project(client: TestClient) -> int:
    X, y = blobs(60)
    created = client.post(
        "/api/v1/projects",
        json={
            "name": f"outage{time.monotonic_ns()}",
            "classes": ["a", "b", "c"],
            "data_kind": "features",
            "input_shape": [4],
            "settings": SETTINGS,
        },
    )
    assert created.status_code == 201, created.text
    pid = int(created.json()["id"])
    items = [
        {"external_id": f"i{i}", "features": X[i].tolist(), "ground_truth": int(y[i])} for i in range(60)
    ]
    assert client.post(f"/api/v1/projects/{pid}/items", json={"items": items}).status_code == 200
    assert client.post(f"/api/v1/projects/{pid}/simulate").status_code == 200
    return pid


def test_postgres_down_gives_503_then_work_resumes(
    outage_api: tuple[TestClient, TcpProxy, TcpProxy, str],
) -> None:
    client, pg_proxy, _redis_proxy, _url = outage_api
    pid = _ready_project(client)
    assert client.get("/api/v1/projects").status_code == 200

    pg_proxy.cut()
    label = {"labels": [{"external_id": "i1", "label": "b"}]}
    for call in (
        lambda: client.get("/api/v1/projects"),  # the key check itself needs the database
        lambda: client.get(f"/api/v1/projects/{pid}/queue"),
        lambda: client.post(f"/api/v1/projects/{pid}/labels", json=label),
        lambda: client.post(f"/api/v1/projects/{pid}/rounds"),
        lambda: client.get("/health", headers={}),
    ):
        response, elapsed = _timed(call)
        _assert_unavailable(response, elapsed, "database")
    health = client.get("/health", headers={"Authorization": ""})
    assert "unreachable" in health.json()["detail"]["reason"]
    assert str(pg_proxy.port) not in health.text and "127.0.0.1" not in health.text, health.text

    pg_proxy.restore()
    # Pooled connections died with the cut; pre-ping replaces them, so the first request succeeds.
    response = client.get(f"/api/v1/projects/{pid}")
    assert response.status_code == 200, response.text
    assert client.post(f"/api/v1/projects/{pid}/labels", json=label).status_code == 200
    assert client.get("/health").json()["status"] == "ok"


def test_redis_down_gives_503_then_rounds_start_again(
    outage_api: tuple[TestClient, TcpProxy, TcpProxy, str],
) -> None:
    client, _pg_proxy, redis_proxy, url = outage_api
    pid = _ready_project(client)

    assert client.get("/health").json()["broker"] == "ok"
    redis_proxy.cut()
    response, elapsed = _timed(lambda: client.post(f"/api/v1/projects/{pid}/rounds"))
    _assert_unavailable(response, elapsed, "broker")
    # issue 15, item 7: /health says the broker is down, without its address; every 503 has Retry-After
    health, elapsed = _timed(lambda: client.get("/health", headers={"Authorization": ""}))
    _assert_unavailable(health, elapsed, "broker")
    assert str(redis_proxy.port) not in health.text and "127.0.0.1" not in health.text, health.text
    # The round that could not be sent is marked failed with the reason: it does not block the project.
    rounds = client.get(f"/api/v1/projects/{pid}/rounds").json()["items"]
    assert [r["status"] for r in rounds] == ["failed"]
    assert "could not enqueue" in rounds[0]["error"]
    # Everything that needs only the database still works.
    assert client.get(f"/api/v1/projects/{pid}/queue").status_code == 200

    redis_proxy.restore()
    assert client.get("/health").status_code == 200
    started = client.post(f"/api/v1/projects/{pid}/rounds")
    assert started.status_code == 202, started.text
    # The message reached Redis (no worker runs here: it waits in the round queue).
    probe = redis.Redis.from_url(url)
    try:
        assert int(probe.llen("gpu")) >= 1
    finally:
        probe.delete("gpu")
        probe.close()
