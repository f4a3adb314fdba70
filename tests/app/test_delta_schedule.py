"""The service's default δ schedule (``final``, :mod:`tbal.plan`): rounds before the last planned one
certify nothing (their δ share is 0), the last planned round certifies with the whole in-horizon δ, and
every round records its share (the shares sum to at most δ)."""

from __future__ import annotations

from tests.app.conftest import Api
from tests.app.test_rounds import MakeProject, ready_project


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


def test_dataset_guarantee_is_refused_by_the_service_for_now(api: Api) -> None:
    body = {"name": "d", "classes": ["a", "b"], "data_kind": "features", "input_shape": [4]}
    response = api.post("/api/v1/projects", json={**body, "settings": {"guarantee": "dataset"}})
    assert response.status_code == 422
    assert response.json()["detail"]["field"] == "settings.guarantee"
