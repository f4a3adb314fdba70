"""The service test fixtures (a migrated database on SQLite and PostgreSQL, an API client with a key),
shared from tests/app, and a connected Label Studio project with a first model."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.app import conftest as app_fixtures
from tests.app.conftest import Api, blobs
from tests.conftest import REPO_ROOT

# The service's fixtures, shared: a migrated database (SQLite and PostgreSQL), settings, an API client.
sqlite_template = app_fixtures.sqlite_template
postgres_schema_url = app_fixtures.postgres_schema_url
database_url = app_fixtures.database_url
settings = app_fixtures.settings
session_factory = app_fixtures.session_factory
api = app_fixtures.api
make_project = app_fixtures.make_project

FIXTURES = Path(REPO_ROOT.parent / "shared" / "fixtures" / "label-studio")
CLASSES = ["Positive", "Negative"]
D = 4
FAST = {
    "delta_schedule": "uniform",  # every round may auto-label (the default certifies in the last one)
    "validation_size": 150,
    "seed_size": 20,
    "label_budget": 60,
    "batch_size": 10,
    "model": "mlp",
    "hidden": [16],
    "epochs": 15,
    "lr": 0.05,
    "confidence": "softmax",
    "epsilon": 0.1,
}


@dataclass
class LSProject:
    """A tbal project connected to Label Studio: its id, name, backend path and secret."""

    id: int
    name: str
    path: str
    secret: str
    url: str


def features_of(task_id: int) -> list[float]:
    """Features for a Label Studio task: a point near the centre of class ``task_id % 2`` of
    ``blobs(..., k=2, seed=5)`` (the data :func:`train_first_model` trains on)."""
    centers = np.random.default_rng(5).normal(scale=3.0, size=(2, D))
    noise = np.random.default_rng(1000 + task_id).normal(scale=0.3, size=D)
    return [float(v) for v in centers[task_id % 2] + noise]


def fixture_path(name: str) -> Path:
    path = FIXTURES / name
    if not path.is_file():
        pytest.skip(f"Label Studio fixture missing: {path}")
    return path


def recorded_requests() -> list[dict[str, Any]]:
    with fixture_path("requests.jsonl").open() as f:
        return [json.loads(line) for line in f if line.strip()]


def upload(
    api: Api, pid: int, X: np.ndarray, y: np.ndarray | None = None, ids: list[str] | None = None
) -> None:
    arrays: dict[str, Any] = {"X": X}
    if y is not None:
        arrays["y"] = y
    if ids is not None:
        arrays["external_ids"] = np.array(ids)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    response = api.post(
        f"/api/v1/projects/{pid}/items/upload",
        content=buffer.getvalue(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 200, response.text


@pytest.fixture
def connected(api: Api, make_project: Callable[..., dict[str, Any]]) -> Callable[..., LSProject]:
    """Make a Label Studio-connected project (classes Positive/Negative, 4 features)."""

    def make(**overrides: Any) -> LSProject:
        name = f"ls{uuid.uuid4().hex[:8]}"
        project = make_project(name=name, classes=CLASSES, input_shape=[D], settings={**FAST, **overrides})
        response = api.post(f"/api/v1/projects/{project['id']}/label-studio/connection")
        assert response.status_code == 201, response.text
        body = response.json()
        return LSProject(
            id=project["id"],
            name=name,
            path=body["url"].removeprefix(str(api.client.base_url)),
            secret=body["secret"],
            url=body["url"],
        )

    return make


def train_first_model(api: Api, project: LSProject, n: int = 400, spread: float = 2.0) -> dict[str, Any]:
    """Items with ground truth, the queue answered from it, one round run to its end."""
    X, y = blobs(n, d=D, k=2, seed=5, spread=spread)
    upload(api, project.id, X, y)
    assert api.post(f"/api/v1/projects/{project.id}/simulate").status_code == 200
    started = api.post(f"/api/v1/projects/{project.id}/rounds")
    assert started.status_code == 202, started.text
    done = api.wait_round(started.json()["id"])
    assert done["status"] == "succeeded", done
    return done
