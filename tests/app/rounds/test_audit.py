"""Audit mode: a round sends a uniform sample of its auto-labels to humans (purpose ``audit``); their
labels never train; the audit report counts the wrong auto-labels and gives the Clopper–Pearson interval
beside the bound the round promised."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from scipy.stats import binomtest

from app.rounds.audit_service import clopper_pearson
from tests.app.conftest import Api, blobs, upload_npz

K = 25
SETTINGS = {
    "delta_schedule": "uniform",  # every round may auto-label (the default certifies in the last one)
    "validation_size": 150,
    "seed_size": 40,
    "label_budget": 60,
    "batch_size": 10,
    "model": "mlp",
    "hidden": [16],
    "epochs": 15,
    "lr": 0.05,
    "confidence": "softmax",
    "epsilon": 0.15,
    "delta": 0.1,
    "audit_size": K,
}


@pytest.mark.parametrize(("wrong", "n"), [(0, 1), (0, 25), (3, 25), (12, 25), (25, 25), (1, 400)])
@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_clopper_pearson_matches_scipy(wrong: int, n: int, alpha: float) -> None:
    expected = binomtest(wrong, n).proportion_ci(confidence_level=1 - alpha, method="exact")
    lower, upper = clopper_pearson(wrong, n, alpha)
    assert lower == pytest.approx(expected.low, abs=1e-12) and upper == pytest.approx(
        expected.high, abs=1e-12
    )


def test_clopper_pearson_refuses_nonsense() -> None:
    for args in ((1, 0, 0.05), (3, 2, 0.05), (-1, 5, 0.05), (1, 5, 0.0), (1, 5, 1.0)):
        with pytest.raises(ValueError):
            clopper_pearson(*args)


def _all(api: Api, url: str, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = 0
    while True:
        page = api.get(url, params={**params, "after_id": after, "limit": 1000}).json()
        out += page["items"]
        if page["next_after_id"] is None:
            return out
        after = page["next_after_id"]


def test_a_round_audits_k_auto_labels(api: Api, make_project: Callable[..., dict[str, Any]]) -> None:
    pid = int(make_project(settings=SETTINGS)["id"])
    X, y = blobs(700, seed=3, spread=1.6)  # overlapping blobs: some auto-labels are wrong
    upload_npz(api, pid, X, y, id_prefix="x")
    assert api.post(f"/api/v1/projects/{pid}/simulate").status_code == 200
    rid = api.post(f"/api/v1/projects/{pid}/rounds").json()["id"]
    done = api.wait_round(rid)
    assert done["status"] == "succeeded", done
    metrics = done["metrics"]
    assert metrics["auto_labeled"] >= K, "the round auto-labeled too little to audit"
    assert metrics["audit_sampled"] == K

    pending = api.get(f"/api/v1/rounds/{rid}/audit").json()
    assert pending["sampled"] == K and pending["answered"] == 0 and pending["verdict"] == "pending"
    assert pending["interval"] is None and pending["auto_labeled"] == metrics["auto_labeled"]

    # The sample: K auto-labeled items of this round, in the queue with purpose audit, role audit.
    queue = [q for q in _all(api, f"/api/v1/projects/{pid}/queue") if q["purpose"] == "audit"]
    assert len(queue) == K and {q["round_id"] for q in queue} == {rid}
    auto = {a["external_id"]: a for a in _all(api, f"/api/v1/projects/{pid}/auto-labels")}
    assert all(q["external_id"] in auto and auto[q["external_id"]]["round_id"] == rid for q in queue)
    audit_items = _all(api, f"/api/v1/projects/{pid}/items", role="audit")
    assert sorted(i["external_id"] for i in audit_items) == sorted(q["external_id"] for q in queue)

    # Humans answer: the truth, except three answers made to disagree with the auto-label.
    truth = {f"x{i}": int(y[i]) for i in range(len(y))}
    labels = []
    for j, q in enumerate(queue):
        label = truth[q["external_id"]]
        if j < 3:
            label = (auto[q["external_id"]]["label"] + 1) % 3
        labels.append({"external_id": q["external_id"], "label": label})
    expected_wrong = sum(1 for e in labels if e["label"] != auto[e["external_id"]]["label"])
    posted = api.post(f"/api/v1/projects/{pid}/labels", json={"labels": labels})
    assert posted.status_code == 200, posted.text

    report = api.get(f"/api/v1/rounds/{rid}/audit").json()
    assert report["answered"] == K and report["wrong"] == expected_wrong >= 3
    assert report["audited_error"] == pytest.approx(expected_wrong / K)
    lower, upper = clopper_pearson(expected_wrong, K, 0.1)
    assert report["interval"] == pytest.approx([lower, upper]) and report["confidence"] == pytest.approx(0.9)
    assert report["epsilon"] == 0.15 and report["promised_bound"] == metrics["pooled_error_bound"]
    assert report["verdict"] == ("exceeds" if lower > 0.15 else "consistent")
    assert api.get(f"/api/v1/projects/{pid}/audit").json()["items"] == [report]

    # Audit labels never train nor validate: the items keep their role, and what the next round would
    # load holds none of them.
    assert len(_all(api, f"/api/v1/projects/{pid}/items", role="audit")) == K
    # (rounds load training labels from role "train" and validation labels from role "validation" only)
    roles = {h["external_id"]: h["role"] for h in _all(api, f"/api/v1/projects/{pid}/labels")}
    assert all(roles[q["external_id"]] == "audit" for q in queue)


def test_no_audit_without_the_setting(api: Api, make_project: Callable[..., dict[str, Any]]) -> None:
    pid = int(make_project(settings={k: v for k, v in SETTINGS.items() if k != "audit_size"})["id"])
    X, y = blobs(400, seed=4)
    items = [
        {"external_id": f"i{i}", "features": X[i].tolist(), "ground_truth": int(y[i])} for i in range(400)
    ]
    assert api.post(f"/api/v1/projects/{pid}/items", json={"items": items}).status_code == 200
    assert api.post(f"/api/v1/projects/{pid}/simulate").status_code == 200
    done = api.wait_round(api.post(f"/api/v1/projects/{pid}/rounds").json()["id"])
    assert done["status"] == "succeeded" and done["metrics"]["audit_sampled"] == 0
    report = api.get(f"/api/v1/rounds/{done['id']}/audit").json()
    assert report["verdict"] == "not audited" and report["sampled"] == 0
    assert all(q["purpose"] != "audit" for q in _all(api, f"/api/v1/projects/{pid}/queue"))
