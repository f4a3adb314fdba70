"""One path for a round (issue 12, item 2): the service, driven through its API with an oracle labeler, and
:func:`tbal.loop.run_tbal` on the same data, seed and budgets make the same rounds: the same items
auto-labeled with the same labels, the same thresholds, the same training queries and validation top-ups,
the same δ share per round.

Data: the first 1,200 of scikit-learn's digits (uint8 8×8 images, values 0..16, so both paths must divide
by 16; LeNet-5, 6 epochs) and the first 1,500 SST-2 MiniLM embeddings (float16 in the file, float32 in
the service; an MLP), uploaded in data order so that the k-th smallest item id is row k. The budget
leaves room for four rounds (the seed, three batches of 50). Under the ``uniform`` δ schedule (the
mechanics fixtures pin it) the second round auto-labels about 260 digits (480 SST-2 sentences) and removes
validation items below the floor, so it and the third buy validation top-ups; under ``final`` (the
default: δ to the last planned round only) the first three certify nothing and the last auto-labels most
of the pool. The library runs with the settings the project holds, whichever schedule they give. Both
paths run on one torch thread (another thread count sums in another order).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import AutoLabel, Item, LabelQuery, Round
from app.services.project_config import runtime_config
from tbal.config import TBALConfig
from tbal.data import make_dataset
from tbal.loop import RunResult, run_tbal
from tbal.plan import round_seed
from tests.app.conftest import Api, MakeProject

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
RUN_SEED = 11
BUDGETS: dict[str, Any] = {
    "validation_size": 400,
    "seed_size": 50,
    "label_budget": 200,
    "batch_size": 50,
    "validation_floor": 300,
    "confidence": "softmax",
    "delta_schedule": "uniform",  # every round certifies: more auto-labeled rounds to compare
}


@dataclass(frozen=True)
class Case:
    """A real data set as the service gets it: a project (kind, shape, classes) and its model settings."""

    file: str
    rows: int
    project: dict[str, Any]
    settings: dict[str, Any]

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        path = DATA / self.file
        if not path.exists():
            pytest.skip(f"{path} is not there (shared/data, see DATA.md)")
        with np.load(path) as z:
            key = "X" if "X" in z.files else "X_train"
            y_key = "y" if "y" in z.files else "y_train"
            return np.asarray(z[key][: self.rows]), np.asarray(z[y_key][: self.rows]).astype(np.int64)


CASES = {
    # uint8 8×8 images, values 0..16: both paths must divide by 16
    "digits": Case(
        "sklearn_digits.npz",
        1200,
        {"classes": [str(k) for k in range(10)], "data_kind": "image", "input_shape": [8, 8]},
        {"model": "lenet5", "epochs": 6, "lr": 0.02, "epsilon": 0.1},
    ),
    # float16 MiniLM embeddings: the service stores float32, the library converts the same way
    "sst2": Case(
        "sst2_minilm.npz",
        1500,
        {"classes": ["negative", "positive"], "data_kind": "features", "input_shape": [384]},
        {"model": "mlp", "hidden": [64], "epochs": 20, "lr": 0.05, "epsilon": 0.15},
    ),
}


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Both paths on one torch thread (the service's ``torch_threads``): sums in one order."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _service_run(api: Api, make_project: MakeProject, case: Case, X: np.ndarray, y: np.ndarray) -> int:
    """Create the project, upload the rows in order, and run rounds (the oracle answering every query
    before each) until the service refuses another one because the budget is spent."""
    body = make_project(**case.project, settings={**BUDGETS, **case.settings}, seed=RUN_SEED)
    pid = int(body["id"])
    buffer = io.BytesIO()
    np.savez(buffer, X=X, y=y)
    upload = api.post(
        f"/api/v1/projects/{pid}/items/upload",
        content=buffer.getvalue(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert upload.status_code == 200, upload.text
    for _ in range(10):
        assert api.post(f"/api/v1/projects/{pid}/simulate").status_code == 200
        started = api.post(f"/api/v1/projects/{pid}/rounds")
        if started.status_code == 409:
            assert started.json()["detail"]["field"] in ("label_budget", "pool", "validation_labels"), (
                started.text
            )
            return pid
        assert started.status_code == 202, started.text
        done = api.wait_round(started.json()["id"])
        assert done["status"] == "succeeded", done
    raise AssertionError("the service kept starting rounds past the label budget")


def _service_rounds(factory: sessionmaker[Session], pid: int) -> list[dict[str, Any]]:
    """Per round, in data rows: auto-labels {row: label}, training queries, top-ups, thresholds, δ_k."""
    with factory() as session:
        ids = list(session.scalars(select(Item.id).where(Item.project_id == pid).order_by(Item.id)))
        row_of = {item_id: row for row, item_id in enumerate(ids)}
        rounds = session.scalars(select(Round).where(Round.project_id == pid).order_by(Round.index)).all()
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


def _library_rounds(X: np.ndarray, y: np.ndarray, config: TBALConfig) -> list[dict[str, Any]]:
    """The same run through :func:`tbal.loop.run_tbal`, read back per round from its records."""
    by_round: list[dict[str, Any]] = []
    result: RunResult = run_tbal(make_dataset(X, y), config, seed=RUN_SEED)
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


@pytest.mark.parametrize("name", list(CASES))
def test_the_service_and_run_tbal_make_the_same_rounds(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session], one_thread: None, name: str
) -> None:
    case = CASES[name]
    X, y = case.load()
    pid = _service_run(api, make_project, case, X, y)
    service = _service_rounds(session_factory, pid)
    stored = api.get(f"/api/v1/projects/{pid}").json()["settings"]  # as the project holds them
    config = runtime_config(stored, api.settings)  # the service's own translation of the settings
    library = _library_rounds(X, y, config)

    assert len(service) == len(library) == config.loop.planned_rounds == 4, (len(service), len(library))
    assert sum(len(r["auto"]) for r in service) > 0, "the run must auto-label something"
    if config.thresholds.delta_schedule == "uniform":
        assert sum(len(r["top_up"]) for r in service) > 0, "the floor must make the run buy top-ups"
    for k, (ours, theirs) in enumerate(zip(service, library, strict=True)):
        assert ours["auto"] == theirs["auto"], f"round {k}: auto-labels differ"
        assert ours["thresholds"] == theirs["thresholds"], f"round {k}: thresholds differ"
        assert ours["delta_round"] == theirs["delta_round"], f"round {k}: δ_k differs"
        assert ours["training"] == theirs["training"], f"round {k}: training queries differ"
        assert ours["top_up"] == theirs["top_up"], f"round {k}: validation top-ups differ"
    assert [r["seed"] for r in service] == [round_seed(RUN_SEED, k) for k in range(len(service))]
    assert sum(r["delta_round"] for r in service) <= config.thresholds.delta
