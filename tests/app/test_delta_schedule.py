"""The service's default δ schedule (``final``, :mod:`tbal.plan`): rounds before the last planned one
certify nothing (their δ share is 0), the last planned round certifies with the whole in-horizon δ, and
every round records its share (the shares sum to at most δ)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.rounds.load import load_round
from app.settings import Settings
from tests.app.conftest import Api, MakeProject, blobs, ready_project


def test_default_schedule_certifies_in_the_last_planned_round(api: Api, make_project: MakeProject) -> None:
    # 20 seed + 2 rounds of 20 = label_budget 60: planned rounds 3 (indices 0, 1, 2)
    pid = ready_project(
        api, make_project, delta_schedule="final", label_budget=60, seed_size=20, batch_size=20
    )
    rounds = []
    for _ in range(3):
        rounds.append(api.run_round(pid))
        assert api.post(f"/api/v1/projects/{pid}/simulate").status_code == 200
    shares = [r["metrics"]["delta_round"] for r in rounds]
    delta = rounds[0]["metrics"]["delta"]
    assert shares[0] == shares[1] == 0.0
    assert abs(shares[2] - 0.9 * delta) < 1e-6  # the whole in-horizon share (the tail keeps 10 %)
    assert sum(shares) <= delta
    assert rounds[0]["metrics"]["auto_labeled"] == rounds[1]["metrics"]["auto_labeled"] == 0
    assert rounds[2]["metrics"]["auto_labeled"] > 0  # blobs are easy: the one certificate labels most
    assert rounds[0]["metrics"]["delta_schedule"] == "final"


def test_a_project_stopped_early_certifies_in_its_next_round(api: Api, make_project: MakeProject) -> None:
    """Stopping before the last planned round: lower label_budget to what was spent, and the next round
    is the last the budget allows, so it certifies with the final share instead of auto-labeling nothing."""
    pid = ready_project(
        api, make_project, delta_schedule="final", label_budget=200, seed_size=20, batch_size=20
    )  # planned rounds 10
    first = api.run_round(pid)
    assert first["metrics"]["delta_round"] == 0.0 and first["metrics"]["auto_labeled"] == 0
    assert api.post(f"/api/v1/projects/{pid}/simulate").status_code == 200
    spent = api.get(f"/api/v1/projects/{pid}").json()["counts"]["budget_used"]
    patched = api.patch(f"/api/v1/projects/{pid}", json={"settings": {"label_budget": spent}})
    assert patched.status_code == 200, patched.text
    second = api.run_round(pid)
    delta = second["metrics"]["delta"]
    assert second["metrics"]["delta_round"] == pytest.approx(0.9 * delta, rel=1e-6)
    assert second["metrics"]["auto_labeled"] > 0
    assert second["n_queries"] == 0


def test_dataset_guarantee_carries_auto_labels_and_their_mistake_bounds(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    """A ``dataset`` project: each certifying round records the bound on its auto-labels' mistakes, and the
    next round counts the project's human labels, auto-labels and those bounds (tbal.loop.LabeledSoFar)."""
    data = blobs(1500, seed=2, spread=1.5)  # overlapping: round 0 leaves part of the pool
    pid = ready_project(
        api,
        make_project,
        data=data,
        guarantee="dataset",
        delta_schedule="uniform",
        validation_floor=100,
        targeted_validation=0,  # round 0 certifies on the whole validation set
    )
    first = api.run_round(pid)
    assert first["metrics"]["guarantee"] == "dataset"
    assert first["metrics"]["auto_labeled"] > 0 and first["metrics"]["auto_mistakes_bound"] >= 0
    assert api.post(f"/api/v1/projects/{pid}/simulate").status_code == 200
    started = api.post(f"/api/v1/projects/{pid}/rounds")
    assert started.status_code == 202, started.text
    loaded = load_round(started.json()["id"], session_factory, settings)
    so_far = loaded.labeled_so_far
    assert so_far is not None
    assert so_far.auto_labels == first["metrics"]["auto_labeled"]
    assert so_far.mistakes_bound == pytest.approx(first["metrics"]["auto_mistakes_bound"])
    assert so_far.human_labels == api.get(f"/api/v1/projects/{pid}").json()["counts"]["human_labels"]
