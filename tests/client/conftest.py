"""Fixtures of the client tests: the service in process on a fresh SQLite file (migrated), reached
through FastAPI's TestClient wrapped by :class:`tbal_client.TBALClient`; and helpers for the digits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory
from app.main import create_app
from app.projects.keys_service import create_key
from app.settings import Settings
from tbal_client import ProjectCounts, TBALClient
from tests.in_process import as_httpx_client

FAST_SETTINGS = {
    "delta_schedule": "uniform",  # every round may auto-label (the default certifies in the last one)
    "epsilon": 0.1,
    "delta": 0.1,
    "bound": "valid",
    "guarantee": "pooled",
    "model": "mlp",
    "hidden": [32],
    "epochs": 15,
    "lr": 0.05,
    "confidence": "softmax",
    "validation_size": 300,
    "calibration_fraction": 0.1,
    "seed_size": 60,
    "label_budget": 120,
    "batch_size": 60,
}
"""Digits in a few seconds on one core: 300 validation + 120 training labels, 2–3 rounds."""


def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits: X (1797, 64) float32 in [0, 1], y (1797,) int64."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return (data.data / 16.0).astype(np.float32), data.target.astype(np.int64)


def project_counts(tb: TBALClient, project_id: int) -> ProjectCounts:
    """A project's counts: ``GET /projects/{id}`` sends them (creating, updating and listing do not)."""
    counts = tb.get_project(project_id).counts
    assert counts is not None, f"project {project_id} came back without its counts"
    return counts


@pytest.fixture
def service_settings(tmp_path: Path) -> Settings:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'tbal.sqlite'}",
        artifacts_dir=tmp_path / "artifacts",
        upload_dir=tmp_path / "uploads",
        progress_interval_s=0.05,
        train_device="cpu",
        torch_threads=1,
    )
    upgrade(settings)
    return settings


@pytest.fixture
def api_key(service_settings: Settings) -> str:
    engine = make_engine(service_settings)
    try:
        _key, secret = create_key(make_session_factory(engine), "client-tests")
    finally:
        engine.dispose()
    return secret


@pytest.fixture
def tb(service_settings: Settings, api_key: str) -> Iterator[TBALClient]:
    """The typed client over the app in process (the key is given to the client, not the TestClient)."""
    with TestClient(create_app(service_settings)) as http:
        yield TBALClient(http=as_httpx_client(http), key=api_key)


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The service's OpenAPI document (the client's type tests check the client against it)."""
    folder = tmp_path_factory.mktemp("openapi")
    settings = Settings(
        database_url=f"sqlite:///{folder / 'tbal.sqlite'}",
        artifacts_dir=folder / "artifacts",
        upload_dir=folder / "uploads",
    )
    return create_app(settings).openapi()
