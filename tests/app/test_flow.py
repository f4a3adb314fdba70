"""The whole in-process flow on scikit-learn's digits, over HTTP: create a project, ingest, answer the
queue from ground truth, run rounds until the budget is spent, read auto-labels, export, predict.

The guarantee is checked against the ground truth: with the valid bound, the true error of all
auto-labels must be at most ε (the bound holds with probability ≥ 1 − δ over the validation draw; the
run is seeded, so this is one fixed draw, not a flaky test).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import numpy as np
from sklearn.datasets import load_digits

from tests.app.conftest import Api

EPSILON = 0.05
DIGITS_SETTINGS = {
    "delta_schedule": "uniform",  # every round may auto-label (the default certifies in the last one)
    "targeted_validation": 0,  # and on the whole validation set from round 0 on
    "epsilon": EPSILON,
    "delta": 0.05,
    "bound": "valid",
    "label_budget": 300,
    "seed_size": 100,
    "batch_size": 100,
    "validation_size": 400,
    "model": "mlp",
    "hidden": [64],
    "epochs": 100,
    "lr": 0.05,
    "confidence": "softmax",
}


def _pages(api: Api, url: str, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    after = 0
    while True:
        page = api.get(url, params={**params, "after_id": after}).json()
        rows += page["items"]
        if page["next_after_id"] is None:
            return rows
        after = page["next_after_id"]


def test_digits_flow_in_process(api: Api) -> None:
    digits = load_digits()
    X = (digits.data / 16).astype(np.float32)
    y = digits.target.astype(np.int64)
    classes = [str(d) for d in range(10)]
    project = api.post(
        "/api/v1/projects",
        json={
            "name": "digits",
            "classes": classes,
            "data_kind": "features",
            "input_shape": [64],
            "settings": DIGITS_SETTINGS,
            "seed": 1,
        },
    ).json()
    pid = project["id"]
    assert (
        api.post(f"/api/v1/projects/{pid}/predict", json={"items": [{"features": [0.0] * 64}]}).status_code
        == 409
    )
    buffer = io.BytesIO()
    np.savez(buffer, X=X, y=y, external_ids=np.array([f"d{i}" for i in range(len(y))]))
    ingest = api.post(
        f"/api/v1/projects/{pid}/items/upload",
        content=buffer.getvalue(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert ingest.json()["inserted"] == len(y)

    rounds: list[dict[str, Any]] = []
    for _ in range(5):
        api.post(f"/api/v1/projects/{pid}/simulate")
        started = api.post(f"/api/v1/projects/{pid}/rounds")
        if started.status_code == 409:
            assert started.json()["detail"]["field"] in ("label_budget", "pool")
            break
        assert started.status_code == 202, started.text
        done = api.wait_round(started.json()["id"])
        assert done["status"] == "succeeded", done["error"]
        rounds.append(done)
    assert len(rounds) == 3  # the seed round and one per query batch: 100 + 2 × 100 = 300 labels
    assert [r["n_queries"] for r in rounds] == [100, 100, 0]
    assert [r["model_version"] for r in rounds] == ["digits-r0", "digits-r1", "digits-r2"]

    last = rounds[-1]["metrics"]
    auto = _pages(api, f"/api/v1/projects/{pid}/auto-labels", limit=250)
    assert len(auto) == last["auto_labeled_total"] > 0
    assert len({a["item_id"] for a in auto}) == len(auto)
    truth = {f"d{i}": int(label) for i, label in enumerate(y)}
    wrong = sum(a["label"] != truth[a["external_id"]] for a in auto)
    assert last["true_error"]["total"] == wrong / len(auto)
    assert wrong / len(auto) <= EPSILON, (wrong, len(auto))
    assert last["coverage_total"] == len(auto) / len(y)
    first = rounds[0]["metrics"]
    assert first["auto_labeled"] > 0 and first["pooled_error_bound"] <= EPSILON
    assert len(first["thresholds"]) == 10 and first["thresholds"][0]["class"] == "0"
    assert set(first["timings"]) >= {
        "load",
        "train",
        "calibrate",
        "thresholds",
        "auto-label",
        "query",
        "write",
    }

    # Filters and keyset pages.
    round0 = _pages(api, f"/api/v1/projects/{pid}/auto-labels", round_id=rounds[0]["id"], limit=100)
    assert len(round0) == first["auto_labeled"]
    sevens = _pages(api, f"/api/v1/projects/{pid}/auto-labels", **{"class": "7", "limit": 50})
    assert sevens and all(a["label"] == 7 and a["class_name"] == "7" for a in sevens)
    assert len(sevens) == sum(a["label"] == 7 for a in auto)
    confident = _pages(api, f"/api/v1/projects/{pid}/auto-labels", min_confidence=0.99, limit=500)
    assert len(confident) == sum(a["confidence"] >= 0.99 for a in auto)
    low = _pages(api, f"/api/v1/projects/{pid}/auto-labels", max_confidence=0.99, limit=500)
    assert len(low) == sum(a["confidence"] <= 0.99 for a in auto)

    # Exports: human labels (yes) and auto-labels (no), one line per item.
    detail = api.get(f"/api/v1/projects/{pid}").json()["counts"]
    n_lines = detail["human_labels"] + detail["auto_labels"]
    jsonl = [json.loads(line) for line in api.get(f"/api/v1/projects/{pid}/export").text.splitlines()]
    assert len(jsonl) == n_lines
    assert {r["source"] for r in jsonl} == {"human", "auto"}
    rows = list(
        csv.DictReader(io.StringIO(api.get(f"/api/v1/projects/{pid}/export", params={"format": "csv"}).text))
    )
    assert len(rows) == n_lines and rows[0]["source"] == "human"
    manifest = api.get(
        f"/api/v1/projects/{pid}/export", params={"format": "manifest", "job_name": "digits-job"}
    )
    lines = [json.loads(line) for line in manifest.text.splitlines()]
    assert len(lines) == n_lines
    auto_line = next(line for line in lines if line["digits-job-metadata"]["human-annotated"] == "no")
    meta = auto_line["digits-job-metadata"]
    assert auto_line["external_id"].startswith("d") and isinstance(auto_line["digits-job"], int)
    assert meta["class-name"] == classes[auto_line["digits-job"]]
    assert 0 < meta["confidence"] <= 1 and meta["job-name"] == "labeling-job/digits-job"
    assert meta["creation-date"].endswith("Z") and meta["type"] == "groundtruth/text-classification"
    assert (
        sum(line["digits-job-metadata"]["human-annotated"] == "yes" for line in lines)
        == detail["human_labels"]
    )

    # Predict with the latest model version.
    predicted = api.post(
        f"/api/v1/projects/{pid}/predict", json={"items": [{"features": X[i].tolist()} for i in range(50)]}
    )
    assert predicted.status_code == 200, predicted.text
    body = predicted.json()
    assert body["model_version"] == "digits-r2" and len(body["predictions"]) == 50
    accuracy = np.mean([p["label"] == y[i] for i, p in enumerate(body["predictions"])])
    assert accuracy > 0.8
    assert all(p["class_name"] == classes[p["label"]] for p in body["predictions"])
    bad = api.post(f"/api/v1/projects/{pid}/predict", json={"items": [{"features": [0.0] * 3}]})
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "items.0.features"


def test_image_project_round_in_process(api: Api) -> None:
    """An image project (8×8 grey digits as 4-bit uint8): stored as bytes, prepared as (n, 1, 8, 8)."""
    digits = load_digits()
    images = digits.images[:400].astype(np.uint8)
    y = digits.target[:400]
    pid = api.post(
        "/api/v1/projects",
        json={
            "name": "digit-images",
            "classes": [str(d) for d in range(10)],
            "data_kind": "image",
            "input_shape": [8, 8],
            "settings": {
                "preset": None,  # the library's defaults (an image project's own: test_data_kind_defaults)
                "validation_size": 150,
                "seed_size": 100,
                "label_budget": 120,
                "batch_size": 20,
                "epochs": 3,
                "confidence": "softmax",
                "epsilon": 0.2,
            },
        },
    ).json()["id"]
    items = [
        {"external_id": str(i), "image": images[i].tolist(), "ground_truth": int(y[i])} for i in range(400)
    ]
    assert api.post(f"/api/v1/projects/{pid}/items", json={"items": items}).json()["inserted"] == 400
    api.post(f"/api/v1/projects/{pid}/simulate")
    rid = api.post(f"/api/v1/projects/{pid}/rounds").json()["id"]
    done = api.wait_round(rid)
    assert done["status"] == "succeeded", done["error"]
    assert done["metrics"]["input_scale"] == 16.0
    # 400 less the seed (100) and the initial validation draw (75: the other half of 150 is drawn
    # inside the stratum later, loop.targeted_validation)
    assert done["metrics"]["pool_size"] == 225
    predicted = api.post(f"/api/v1/projects/{pid}/predict", json={"items": [{"image": images[0].tolist()}]})
    assert predicted.status_code == 200, predicted.text
    assert predicted.json()["model_version"] == "digit-images-r0"
