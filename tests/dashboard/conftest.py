"""Fixtures of the dashboard tests: ``tbal serve`` running as a child process on SQLite (the embedded
default, rounds in process) with a digits project driven to the end through the client; and where the
test artifacts (screenshots) go: ``$TBAL_TEST_ARTIFACTS``, else ``var/test-artifacts/`` (ignored by git)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from examples.demo import Server, create_api_key, free_port, start_server
from tbal_client import APIError, Project, Round, TBALClient
from tests.dashboard.browser import browser  # noqa: F401 (the fixture, for the browser tests here)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("TBAL_TEST_ARTIFACTS", ROOT / "var" / "test-artifacts"))
DONE_FIELDS = ("label_budget", "pool", "max_rounds")

DASHBOARD_EPOCHS = 25  # test_browser scales its long round from the epochs of these settings
DASHBOARD_SETTINGS = {
    "delta_schedule": "uniform",  # every round may auto-label (the default certifies in the last one)
    "epsilon": 0.05,
    "delta": 0.05,
    "bound": "valid",
    "guarantee": "pooled",
    "model": "mlp",
    "hidden": [64],
    "epochs": DASHBOARD_EPOCHS,
    "lr": 0.05,
    "confidence": "softmax",
    "query_strategy": "margin-random",
    "validation_size": 500,
    "calibration_fraction": 0.1,
    "seed_size": 100,
    "label_budget": 300,
    "batch_size": 50,
}
"""Digits to the end in about 5 rounds of a few seconds each on one core."""


@dataclass
class LiveService:
    server: Server
    key: str
    client: TBALClient
    finished: Project
    rounds: list[Round]

    @property
    def base_url(self) -> str:
        return self.server.base_url


def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return (data.data / 16.0).astype(np.float32), data.target.astype(np.int64)


def new_digits_project(tb: TBALClient, name: str, project_settings: dict[str, object]) -> Project:
    """A digits project with its items (and ground truth, for the simulated humans and the audit)."""
    X, y = digits()
    project = tb.create_project(
        name,
        classes=[str(c) for c in range(10)],
        data_kind="features",
        input_shape=[64],
        settings={"delta_schedule": "uniform", **project_settings},  # every round may auto-label
    )
    tb.upload_items(project.id, X, external_ids=[f"{name}-{i}" for i in range(len(y))], ground_truth=y)
    return project


def run_to_the_end(tb: TBALClient, project_id: int, *, max_rounds: int = 20) -> list[Round]:
    """Answer the queue from ground truth and run rounds until the service says the project is done."""
    done: list[Round] = []
    for _ in range(max_rounds):
        if tb.queue_counts(project_id).total:
            tb.simulate(project_id)
        try:
            done.append(tb.run_round(project_id, poll_s=0.1, timeout_s=300))
        except APIError as exc:
            if exc.status == 409 and exc.field in DONE_FIELDS:
                return done
            raise
    raise AssertionError(f"project {project_id} not done after {max_rounds} rounds")


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def live_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    workdir = tmp_path_factory.mktemp("dashboard-service")
    server = start_server(workdir, free_port())
    try:
        key = create_api_key(server.env, "dashboard-tests")
        with TBALClient(server.base_url, key=key) as tb:
            project = new_digits_project(tb, "digits-dashboard", DASHBOARD_SETTINGS)
            rounds = run_to_the_end(tb, project.id)
            yield LiveService(server=server, key=key, client=tb, finished=project, rounds=rounds)
    except BaseException:
        print(f"server log:\n{server.log_tail(60)}")
        raise
    finally:
        server.stop()


# The service tests' fixtures (a migrated database on SQLite and on PostgreSQL, an API client with a key).
from tests.app.conftest import (  # noqa: E402, F401
    api,
    database_url,
    make_project,
    postgres_schema_url,
    session_factory,
    settings,
    sqlite_template,
)
