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

The stratum (``targeted_validation``, :func:`test_the_service_fixes_and_uses_the_stratum_as_run_tbal_does`):
the digits with 100 of the 400 validation items drawn inside the stratum. Round 2 (the one before the
last planned round) fixes it and round 3 certifies inside it, under both schedules; besides the rounds
above, the validation set each round sees, the stratum's flags over its items and the items drawn inside
it are the library's (read by spies on both paths' round inputs).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import app.rounds.run
import tbal.loop
from app.db.models import Item, ProjectStratum, Round, StratumItem
from app.projects.config import runtime_config
from app.rounds.load import LoadedRound
from app.settings import Settings
from tbal.data import make_dataset
from tbal.loop import RoundInput, RoundOutput, Stratum, run_tbal
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
        # no self-training (LeNet-5's default since the thirteenth session): under the uniform schedule every
        # round would train twice, doubling the test's time for a path that the library's tests cover
        {"model": "lenet5", "epochs": 6, "lr": 0.02, "epsilon": 0.1, "pseudo_label_share": 0.0},
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


STRATUM: dict[str, Any] = {"targeted_validation": 100, "stratum_share": 0.5}
"""100 of the 400 validation items are drawn inside the stratum (round 2 fixes it: 4 planned rounds)."""


@dataclass
class SeenRound:
    """What one round saw, in data rows: its validation set, and the stratum's rows among its pool and
    validation rows (None: no stratum yet)."""

    validation: list[int]
    stratum: tuple[list[int], list[int], list[int]] | None


def _seen_stratum(stratum: Stratum | None, pool_rows: np.ndarray, val_rows: np.ndarray) -> Any:
    if stratum is None:
        return None
    return (
        sorted(int(r) for r in pool_rows[stratum.pool]),
        sorted(int(r) for r in val_rows[stratum.validation]),
        sorted(int(r) for r in val_rows[stratum.targeted]),
    )


def _spy_on_the_service(monkeypatch: pytest.MonkeyPatch, row_of: dict[int, int]) -> list[SeenRound]:
    """Record each service round's inputs as it loads them (``row_of``: item id -> data row)."""
    seen: list[SeenRound] = []
    load = app.rounds.run.load_round

    def spy(round_id: int, factory: sessionmaker[Session], settings: Settings) -> LoadedRound:
        loaded = load(round_id, factory, settings)
        pool_rows = np.array([row_of[int(i)] for i in loaded.pool_ids], dtype=np.int64)
        val_rows = np.array([row_of[int(i)] for i in loaded.val_ids], dtype=np.int64)
        seen.append(SeenRound(sorted(val_rows.tolist()), _seen_stratum(loaded.stratum, pool_rows, val_rows)))
        return loaded

    monkeypatch.setattr(app.rounds.run, "load_round", spy)
    return seen


@dataclass
class LibrarySpy:
    """What :func:`tbal.loop.run_tbal` saw per round, the rows it drew inside the stratum and the
    stratum's rows (bool over the data set)."""

    seen: list[SeenRound]
    targeted: list[int]
    stratum: list[int]


def _spy_on_the_library(monkeypatch: pytest.MonkeyPatch) -> LibrarySpy:
    spy = LibrarySpy([], [], [])
    make_input = tbal.loop._oracle_round_input
    fix = tbal.loop._HumanSets.fix_stratum

    def round_input(dataset: Any, config: Any, sets: Any, pool_rows: np.ndarray, *rest: Any) -> RoundInput:
        inputs = make_input(dataset, config, sets, pool_rows, *rest)
        validation = np.asarray(sets.validation)
        spy.seen.append(
            SeenRound(sorted(validation.tolist()), _seen_stratum(inputs.stratum, pool_rows, validation))
        )
        return inputs

    def fix_stratum(sets: Any, out: RoundOutput, pool_rows: np.ndarray, validation: np.ndarray) -> np.ndarray:
        targeted = fix(sets, out, pool_rows, validation)
        if out.pool_in_stratum is not None:  # the round that fixes it
            spy.targeted, spy.stratum = sorted(targeted.tolist()), np.flatnonzero(sets.stratum).tolist()
        return targeted

    monkeypatch.setattr(tbal.loop, "_oracle_round_input", round_input)
    monkeypatch.setattr(tbal.loop._HumanSets, "fix_stratum", fix_stratum)
    return spy


def _stored_stratum(factory: sessionmaker[Session], pid: int) -> tuple[int, list[int], list[int]]:
    """(index of the round that fixed it, its members' rows, the rows drawn inside it) as stored."""
    with factory() as session:
        ids = list(session.scalars(select(Item.id).where(Item.project_id == pid).order_by(Item.id)))
        row_of = {item_id: row for row, item_id in enumerate(ids)}
        fixed = session.get(ProjectStratum, pid)
        assert fixed is not None, "no round fixed the stratum"
        fixed_by = session.get(Round, fixed.round_id)
        assert fixed_by is not None
        members = session.execute(
            select(StratumItem.item_id, StratumItem.targeted).where(StratumItem.project_id == pid)
        ).all()
        assert fixed.targeted == sum(1 for _, t in members if t)
        return (
            fixed_by.index,
            sorted(row_of[i] for i, _ in members),
            sorted(row_of[i] for i, t in members if t),
        )


@pytest.mark.parametrize("schedule", ["uniform", "final"])
def test_the_service_fixes_and_uses_the_stratum_as_run_tbal_does(
    api: Api,
    make_project: MakeProject,
    session_factory: sessionmaker[Session],
    one_thread: None,
    monkeypatch: pytest.MonkeyPatch,
    schedule: str,
) -> None:
    case = CASES["digits"]
    case = Case(case.file, case.rows, case.project, {**case.settings, **STRATUM, "delta_schedule": schedule})
    X, y = case.load()
    pid = _upload(api, make_project, case, X, y)
    with session_factory() as session:
        ids = session.scalars(select(Item.id).where(Item.project_id == pid).order_by(Item.id)).all()
    service_seen = _spy_on_the_service(monkeypatch, {int(i): row for row, i in enumerate(ids)})
    run_until_budget_spent(api, pid)
    service = service_rounds(session_factory, pid)
    stored = api.get(f"/api/v1/projects/{pid}").json()["settings"]
    config = runtime_config(stored, api.settings)
    library_spy = _spy_on_the_library(monkeypatch)
    library = library_rounds(run_tbal(make_dataset(X, y), config, seed=RUN_SEED))

    assert config.loop.targeted_validation == 100 and len(service) == config.loop.planned_rounds == 4
    assert_same_rounds(service, library, config, RUN_SEED)
    assert len(service_seen) == len(library_spy.seen) == 4
    for k, (ours, theirs) in enumerate(zip(service_seen, library_spy.seen, strict=True)):
        assert ours.validation == theirs.validation, f"round {k}: validation sets differ"
        assert ours.stratum == theirs.stratum, f"round {k}: stratum flags differ"
    assert [s.stratum is not None for s in service_seen] == [False, False, False, True]
    assert len(service_seen[0].validation) == 300, "the initial draw leaves the 100 for the stratum"

    fixed_in, members, targeted = _stored_stratum(session_factory, pid)
    assert fixed_in == 2, "the round before the last planned one fixes the stratum"
    assert targeted == library_spy.targeted and len(targeted) == 100
    assert members == library_spy.stratum
    assert set(targeted) <= set(service[2]["top_up"]), "the targeted items are queued as validation items"
    inside = set(members)
    assert service[3]["auto"] and set(service[3]["auto"]) <= inside, "round 3 certifies inside the stratum"


def test_warm_starts_continue_the_saved_classifier_as_run_tbal_continues_its_own(
    api: Api,
    make_project: MakeProject,
    session_factory: sessionmaker[Session],
    one_thread: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``warm_start_epochs`` under the ``final`` schedule: rounds 1-3, the certifying round 3 included,
    each continue the classifier its predecessor saved (round 0 trains a fresh one); the library carries
    its classifier in memory. The queries the warm classifiers rank, and so every later round, are the
    library's only if the service continued exactly the saved weights."""
    case = CASES["digits"]
    warm = {"delta_schedule": "final", "warm_start_epochs": 2}
    case = Case(case.file, case.rows, case.project, {**case.settings, **warm})
    X, y = case.load()
    pid = _upload(api, make_project, case, X, y)
    continued: list[bool] = []
    load = app.rounds.run.load_round

    def spy(round_id: int, factory: sessionmaker[Session], settings: Settings) -> LoadedRound:
        loaded = load(round_id, factory, settings)
        continued.append(loaded.warm_start is not None)
        return loaded

    monkeypatch.setattr(app.rounds.run, "load_round", spy)
    run_until_budget_spent(api, pid)
    service = service_rounds(session_factory, pid)
    config = runtime_config(api.get(f"/api/v1/projects/{pid}").json()["settings"], api.settings)
    library = library_rounds(run_tbal(make_dataset(X, y), config, seed=RUN_SEED))

    assert config.train.warm_start_epochs == 2 and config.thresholds.delta_schedule == "final"
    assert continued == [False, True, True, True]
    assert service[3]["auto"], "the certifying round auto-labels"
    assert_same_rounds(service, library, config, RUN_SEED)
