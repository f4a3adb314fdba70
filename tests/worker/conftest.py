"""Fixtures of the worker tests: a migrated database (SQLite and PostgreSQL, the service tests' fixtures),
the API with a Celery dispatcher on an in-memory broker (rounds are queued, nobody consumes them), and a
Celery application bound to the same settings whose ``tbal.run_round`` task the tests call eagerly."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import make_engine, make_session_factory
from app.main import create_app
from app.projects.keys_service import create_key
from app.settings import Settings
from tests.app.conftest import database_url, postgres_schema_url, sqlite_template  # noqa: F401 (fixtures)
from worker.celery_app import TBALCelery, make_celery

SMALL_SETTINGS: dict[str, Any] = {
    "delta_schedule": "uniform",  # every round may auto-label (the default: the last one)
    "epsilon": 0.1,
    "delta": 0.1,
    "bound": "valid",
    "model": "mlp",
    "hidden": [16],
    "epochs": 20,
    "lr": 0.05,
    "confidence": "softmax",
    "validation_size": 200,
    "seed_size": 30,
    "label_budget": 60,
    "batch_size": 30,
}


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:  # noqa: F811 (the imported fixture)
    """On a migrated SQLite file and on a PostgreSQL schema (``database_url`` of tests/app/conftest.py:
    every worker test that uses it runs on both)."""
    return Settings(
        database_url=database_url,
        broker_url="memory://",
        artifacts_dir=tmp_path / "artifacts",
        upload_dir=tmp_path / "uploads",
        progress_interval_s=0.05,
        train_device="cpu",
        torch_threads=1,
    )


@pytest.fixture
def session_factory(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def celery(settings: Settings) -> Iterator[TBALCelery]:
    app = make_celery(settings)
    import worker.tasks  # noqa: F401  (registers tbal.run_round on every application)

    yield app
    app.reset_session_factory()
    app.close()


@dataclass
class Client:
    http: TestClient
    headers: dict[str, str]

    def get(self, url: str, **kw: Any) -> Any:
        return self.http.get(url, headers=self.headers, **kw)

    def post(self, url: str, **kw: Any) -> Any:
        return self.http.post(url, headers={**self.headers, **kw.pop("headers", {})}, **kw)


@pytest.fixture
def client(settings: Settings, session_factory: sessionmaker[Session]) -> Iterator[Client]:
    _key, secret = create_key(session_factory, "worker-tests")
    with TestClient(create_app(settings)) as http:
        yield Client(http, {"Authorization": f"Bearer {secret}"})


def blobs(n: int, d: int = 8, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated Gaussian blobs: X (n, d) float32, y (n,) in 0..k-1."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(k, d))
    y = rng.integers(0, k, size=n)
    return (centers[y] + rng.normal(scale=0.4, size=(n, d))).astype(np.float32), y.astype(np.int64)


def queued_round(client: Client, n: int = 800) -> tuple[int, int]:
    """A project of blobs with its queue answered from ground truth and a round started (queued on the
    in-memory broker). Returns (project id, round id)."""
    X, y = blobs(n)
    created = client.post(
        "/api/v1/projects",
        json={
            "name": f"w{uuid.uuid4().hex[:8]}",
            "classes": ["a", "b", "c"],
            "data_kind": "features",
            "input_shape": [X.shape[1]],
            "settings": SMALL_SETTINGS,
        },
    )
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    items = [{"external_id": f"x{i}", "features": X[i].tolist(), "ground_truth": int(y[i])} for i in range(n)]
    assert client.post(f"/api/v1/projects/{pid}/items", json={"items": items}).status_code == 200
    assert client.post(f"/api/v1/projects/{pid}/simulate").status_code == 200
    started = client.post(f"/api/v1/projects/{pid}/rounds")
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "queued"
    return pid, int(started.json()["id"])


def table_counts(factory: sessionmaker[Session]) -> dict[str, int]:
    with factory() as session:
        return {
            t: int(session.execute(text(f"SELECT count(*) FROM {t}")).scalar_one())
            for t in ("auto_labels", "human_labels", "queries", "rounds")
        }
