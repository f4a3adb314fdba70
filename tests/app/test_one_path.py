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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.projects.config import runtime_config
from tbal.data import make_dataset
from tbal.loop import run_tbal
from tests.app.conftest import (
    Api,
    MakeProject,
    assert_same_rounds,
    library_rounds,
    run_until_budget_spent,
    service_rounds,
)

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


def _upload(api: Api, make_project: MakeProject, case: Case, X: np.ndarray, y: np.ndarray) -> int:
    """Create the project and upload the rows in data order."""
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
    return pid


@pytest.mark.parametrize("name", list(CASES))
def test_the_service_and_run_tbal_make_the_same_rounds(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session], one_thread: None, name: str
) -> None:
    case = CASES[name]
    X, y = case.load()
    pid = _upload(api, make_project, case, X, y)
    run_until_budget_spent(api, pid)
    service = service_rounds(session_factory, pid)
    stored = api.get(f"/api/v1/projects/{pid}").json()["settings"]  # as the project holds them
    config = runtime_config(stored, api.settings)  # the service's own translation of the settings
    library = library_rounds(run_tbal(make_dataset(X, y), config, seed=RUN_SEED))

    assert len(service) == len(library) == config.loop.planned_rounds == 4, (len(service), len(library))
    assert sum(len(r["auto"]) for r in service) > 0, "the run must auto-label something"
    if config.thresholds.delta_schedule == "uniform":
        assert sum(len(r["top_up"]) for r in service) > 0, "the floor must make the run buy top-ups"
    assert_same_rounds(service, library, config, RUN_SEED)
