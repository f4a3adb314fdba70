"""Fixtures of the service tests: a real database built by the migrations, on SQLite and on PostgreSQL.

Every test that uses ``db`` runs twice: on a fresh SQLite file (copied from one migrated template) and
on PostgreSQL (``TBAL_TEST_POSTGRES_URL``, default postgresql+psycopg://postgres@127.0.0.1:5432/test),
in a schema of its own migrated once per session and truncated between tests. Background round threads
rule out a rolled-back outer transaction, hence fresh files / truncation. With ``CI=true`` PostgreSQL
must be reachable (the tests fail otherwise); elsewhere its tests are skipped when it is not.
"""

from __future__ import annotations

import io
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.db.migrate import upgrade
from app.db.models import AutoLabel, Item, LabelQuery, Round
from app.db.session import make_engine, make_session_factory
from app.main import create_app
from app.projects.keys_service import create_key
from app.settings import Settings
from tbal.config import TBALConfig
from tbal.loop import RunResult
from tbal.plan import round_seed

POSTGRES_URL = os.environ.get("TBAL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TABLES = ("api_keys", "projects", "items", "ground_truth", "human_labels", "rounds", "auto_labels", "queries")


def _postgres_problem() -> str | None:
    try:
        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return (
            f"PostgreSQL unreachable at {make_url(POSTGRES_URL).render_as_string(hide_password=True)}: {exc}"
        )
    return None


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("db") / "template.sqlite"
    upgrade(Settings(database_url=f"sqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_schema_url() -> Iterator[str]:
    problem = _postgres_problem()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    schema = f"tbal_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    url_text = url.render_as_string(hide_password=False)
    upgrade(Settings(database_url=url_text))
    try:
        yield url_text
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database for one test."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "tbal.sqlite"
        shutil.copy(template, path)
        yield f"sqlite:///{path}"
        return
    url: str = request.getfixturevalue("postgres_schema_url")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    engine.dispose()
    yield url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        artifacts_dir=tmp_path / "artifacts",
        upload_dir=tmp_path / "uploads",
        progress_interval_s=0.05,
        train_device="cpu",
        torch_threads=1,
        db_pool_size=4,
    )


@pytest.fixture
def session_factory(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings)
    yield make_session_factory(engine)
    engine.dispose()


@dataclass
class Api:
    """A test client with a valid key, and helpers for the common calls."""

    client: TestClient
    headers: dict[str, str]
    settings: Settings

    def get(self, url: str, **kw: Any) -> Any:
        return self.client.get(url, headers=self.headers, **kw)

    def post(self, url: str, **kw: Any) -> Any:
        return self.client.post(url, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def patch(self, url: str, **kw: Any) -> Any:
        return self.client.patch(url, headers=self.headers, **kw)

    def delete(self, url: str, **kw: Any) -> Any:
        return self.client.delete(url, headers=self.headers, **kw)

    def wait_round(self, round_id: int, timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.get(f"/api/v1/rounds/{round_id}").json()
            if body["status"] in ("succeeded", "failed"):
                return dict(body)
            time.sleep(0.05)
        raise AssertionError(f"round {round_id} did not finish in {timeout} s")

    def run_round(self, project_id: int) -> dict[str, Any]:
        """Start a round of ``project_id``, wait for it and check that it succeeded."""
        started = self.post(f"/api/v1/projects/{project_id}/rounds")
        assert started.status_code == 202, started.text
        done = self.wait_round(started.json()["id"])
        assert done["status"] == "succeeded", done
        return done


@pytest.fixture
def api(settings: Settings, session_factory: sessionmaker[Session]) -> Iterator[Api]:
    _key, secret = create_key(session_factory, "tests")
    app = create_app(settings)
    with TestClient(app) as client:
        yield Api(client=client, headers={"Authorization": f"Bearer {secret}"}, settings=settings)


MECHANICS_SETTINGS: dict[str, Any] = {"delta_schedule": "uniform", "preset": None}
"""Settings every test project starts from: these tests check what a round writes, so every round must
be able to auto-label; the service's default schedule (``final``) certifies only in the last planned
round (tests/app/test_delta_schedule.py checks that default). ``preset`` null: the library's defaults,
sized for these tests' small data, where a text or image project naming no preset would get its data
kind's (tests/app/projects/test_data_kind_defaults.py checks those)."""


MakeProject = Callable[..., dict[str, Any]]
FAST: dict[str, Any] = {
    "validation_size": 120,
    "seed_size": 40,
    "label_budget": 60,
    "batch_size": 10,
    "model": "mlp",
    "hidden": [16],
    "epochs": 20,
    "lr": 0.05,
    "confidence": "softmax",
    "epsilon": 0.1,
}
"""A small, quick round on blobs: what the round tests (tests/app/rounds/) and ``ready_project`` use."""


@pytest.fixture
def make_project(api: Api) -> MakeProject:
    """Create a project (features of dimension 4, classes a/b/c unless told otherwise)."""

    def make(**overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": f"p{uuid.uuid4().hex[:8]}",
            "classes": ["a", "b", "c"],
            "data_kind": "features",
            "input_shape": [4],
            "settings": {},
        }
        body.update(overrides)
        body["settings"] = {**MECHANICS_SETTINGS, **body["settings"]}
        response = api.post("/api/v1/projects", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    return make


def blobs(
    n: int, d: int = 4, k: int = 3, seed: int = 0, spread: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated Gaussian blobs: X (n, d) float32, y (n,) in 0..k-1."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(k, d))
    y = rng.integers(0, k, size=n)
    X = centers[y] + rng.normal(scale=spread, size=(n, d))
    return X.astype(np.float32), y.astype(np.int64)


def count_rows(factory: sessionmaker[Session], table: str) -> int:
    with factory() as session:
        return int(session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def upload_npz(
    api: Api, project_id: int, X: np.ndarray, y: np.ndarray | None = None, *, id_prefix: str | None = None
) -> dict[str, Any]:
    """Upload ``X`` (and ground truth ``y``; external ids ``<id_prefix><row>`` when given, else the
    service's default) as one ``.npz`` request; the ingest result."""
    arrays: dict[str, np.ndarray] = {"X": X}
    if y is not None:
        arrays["y"] = y
    if id_prefix is not None:
        arrays["external_ids"] = np.array([f"{id_prefix}{i}" for i in range(len(X))])
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    response = api.post(
        f"/api/v1/projects/{project_id}/items/upload",
        content=buffer.getvalue(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def ready_project(
    api: Api,
    make_project: MakeProject,
    n: int = 400,
    *,
    data: tuple[np.ndarray, np.ndarray] | None = None,
    **settings: Any,
) -> int:
    """A project (``FAST`` settings) with ``n`` blob items (or ``data``: X, y) carrying ground truth, its
    first queue answered from it."""
    pid = int(make_project(settings={**FAST, **settings})["id"])
    X, y = blobs(n, seed=5) if data is None else data
    upload_npz(api, pid, X, y)
    assert api.post(f"/api/v1/projects/{pid}/simulate").status_code == 200
    return pid


class RecordingDispatcher:
    """Takes the place of the in-process dispatcher: rounds (and other work) stay queued until a test
    runs them."""

    name = "recording"

    def __init__(self) -> None:
        self.enqueued: list[int] = []
        self.sent_work: list[tuple[str, int]] = []

    def enqueue_round(self, round_id: int) -> None:
        self.enqueued.append(round_id)

    def send_work(self, work: Callable[..., object], work_id: int, *, task: str, queue: str) -> None:
        self.sent_work.append((task, work_id))

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None


@pytest.fixture
def recorder(api: Api) -> Iterator[RecordingDispatcher]:
    """The app's dispatcher replaced by a :class:`RecordingDispatcher` for the test."""
    state = api.client.app.state.tbal  # type: ignore[attr-defined]
    real = state.dispatcher
    state.dispatcher = RecordingDispatcher()
    yield state.dispatcher
    state.dispatcher = real


# Text projects (tests/app/items/test_raw_texts.py, test_ingest_jobs.py): a separable toy task of two word
# lists.
WORDS = {
    "pos": "wonderful delightful moving superb brilliant charming joyful gripping",
    "neg": "dull tedious awful boring clumsy lifeless dreary painful",
}


def toy_sentences(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Sentences drawn from two word lists (a separable toy task) and their classes."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        words = rng.choice(WORDS[label].split(), size=4)
        texts.append(f"the film was {' '.join(words)} number {i}")
        labels.append(label)
    return texts, labels


def text_project(make_project: MakeProject, encoder: str = "hashing:64", **settings: Any) -> dict[str, Any]:
    body = make_project(
        classes=["neg", "pos"], data_kind="text", input_shape=[], settings={"encoder": encoder, **settings}
    )
    return body


def stored_features(factory: sessionmaker[Session], pid: int) -> tuple[list[str], np.ndarray]:
    with factory() as session:
        rows = session.execute(
            text("SELECT external_id, data FROM items WHERE project_id = :p ORDER BY id"), {"p": pid}
        ).all()
    return [r[0] for r in rows], np.stack([np.frombuffer(bytes(r[1]), dtype="<f4") for r in rows])


# One path (tests/app/test_one_path.py, test_one_path_texts.py): the service's rounds against run_tbal's.
@pytest.fixture
def one_thread() -> Iterator[None]:
    """Both paths on one torch thread (the service's ``torch_threads``): sums in one order."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run_until_budget_spent(api: Api, project_id: int, max_rounds: int = 10) -> None:
    """Run rounds of a project holding its items' ground truth (the oracle answering every query before
    each) until the service refuses another one because the budget (or pool) is spent."""
    for _ in range(max_rounds):
        assert api.post(f"/api/v1/projects/{project_id}/simulate").status_code == 200
        started = api.post(f"/api/v1/projects/{project_id}/rounds")
        if started.status_code == 409:
            assert started.json()["detail"]["field"] in ("label_budget", "pool", "validation_labels"), (
                started.text
            )
            return
        assert started.status_code == 202, started.text
        done = api.wait_round(started.json()["id"])
        assert done["status"] == "succeeded", done
    raise AssertionError("the service kept starting rounds past the label budget")


def service_rounds(factory: sessionmaker[Session], project_id: int) -> list[dict[str, Any]]:
    """Per round, in data rows (the k-th smallest item id is row k: items uploaded in data order):
    auto-labels {row: label}, training queries, top-ups, thresholds, δ_k, the round's seed."""
    with factory() as session:
        ids = list(session.scalars(select(Item.id).where(Item.project_id == project_id).order_by(Item.id)))
        row_of = {item_id: row for row, item_id in enumerate(ids)}
        rounds = session.scalars(
            select(Round).where(Round.project_id == project_id).order_by(Round.index)
        ).all()
        out = []
        for r in rounds:
            auto = session.execute(
                select(AutoLabel.item_id, AutoLabel.label).where(AutoLabel.round_id == r.id)
            ).all()
            queries = session.execute(
                select(LabelQuery.item_id, LabelQuery.purpose).where(LabelQuery.round_id == r.id)
            ).all()
            metrics = dict(r.metrics or {})
            out.append(
                {
                    "auto": {row_of[i]: int(label) for i, label in auto},
                    "training": sorted(row_of[i] for i, p in queries if p == "training"),
                    "top_up": sorted(row_of[i] for i, p in queries if p == "validation"),
                    "thresholds": [c["threshold"] for c in metrics["thresholds"]],
                    "delta_round": metrics["delta_round"],
                    "seed": metrics["seed"],
                }
            )
    return out


def library_rounds(result: RunResult) -> list[dict[str, Any]]:
    """A :func:`tbal.loop.run_tbal` run read back per round as :func:`service_rounds` reads the service's."""
    by_round: list[dict[str, Any]] = []
    offset = 0
    for record in result.rounds:
        n = record.auto_labeled_round
        rows = result.auto_labeled_index[offset : offset + n]
        labels = result.auto_labels[offset : offset + n]
        offset += n
        by_round.append(
            {
                "auto": {int(r): int(label) for r, label in zip(rows, labels, strict=True)},
                "thresholds": record.thresholds,
                "delta_round": record.delta_round,
                "training": sorted(int(r) for r in result.queried_rows[record.round]),
                "top_up": sorted(int(r) for r in result.top_up_rows[record.round]),
            }
        )
    return by_round


def assert_same_rounds(
    service: list[dict[str, Any]], library: list[dict[str, Any]], config: TBALConfig, run_seed: int
) -> None:
    """Round by round: the same auto-labels, thresholds, δ_k, training queries and top-ups; the service's
    rounds seeded as the library seeds them; δ spent within the project's δ."""
    assert len(service) == len(library), (len(service), len(library))
    for k, (ours, theirs) in enumerate(zip(service, library, strict=True)):
        assert ours["auto"] == theirs["auto"], f"round {k}: auto-labels differ"
        assert ours["thresholds"] == theirs["thresholds"], f"round {k}: thresholds differ"
        assert ours["delta_round"] == theirs["delta_round"], f"round {k}: δ_k differs"
        assert ours["training"] == theirs["training"], f"round {k}: training queries differ"
        assert ours["top_up"] == theirs["top_up"], f"round {k}: validation top-ups differ"
    assert [r["seed"] for r in service] == [round_seed(run_seed, k) for k in range(len(service))]
    assert sum(r["delta_round"] for r in service) <= config.thresholds.delta
