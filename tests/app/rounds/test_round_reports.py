"""A round's reports over HTTP: the human labels to review (AUM) and the evaluation of its classifier."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Round
from tests.app.conftest import FAST, Api, ready_project

MakeProject = Callable[..., dict[str, Any]]


def _project(api: Api, make_project: MakeProject, **settings: Any) -> int:
    """400 well-separated blobs with ground truth, the first queue answered; 30 epochs, so that the
    network fits its training labels (a flipped one included) and the margins settle."""
    return ready_project(api, make_project, **{"epochs": 30, **settings})


def _labels(api: Api, pid: int) -> list[dict[str, Any]]:
    return list(api.get(f"/api/v1/projects/{pid}/labels", params={"limit": 1000}).json()["items"])


def test_a_planted_flipped_label_tops_the_label_review(api: Api, make_project: MakeProject) -> None:
    pid = _project(api, make_project)
    before = api.get(f"/api/v1/projects/{pid}/label-review")
    assert before.status_code == 409 and before.json()["detail"]["field"] == "round"
    assert "no round" in before.json()["detail"]["reason"]

    train = [lab for lab in _labels(api, pid) if lab["role"] == "train"]
    victim = train[7]
    wrong = (victim["label"] + 1) % 3
    flip = {"labels": [{"item_id": victim["item_id"], "label": wrong}]}
    assert api.post(f"/api/v1/projects/{pid}/labels", json=flip).status_code == 200
    done = api.run_round(pid)

    review = api.get(f"/api/v1/projects/{pid}/label-review")
    assert review.status_code == 200, review.text
    body = review.json()
    assert body["round_id"] == done["id"] and body["training_labels"] == len(train) == 40
    assert body["fraction"] == 0.05 and body["flagged"] >= 2  # ⌈0.05 · 40⌉ at least
    top = body["items"][0]
    assert top["item_id"] == victim["item_id"] and top["rank"] == 1
    assert top["external_id"] == victim["external_id"]
    classes = ["a", "b", "c"]
    assert top["label"] == top["round_label"] == classes[wrong]
    assert top["predicted"] == classes[victim["label"]]  # the model learned the blob, not the flip
    assert top["aum"] < 0
    aums = [item["aum"] for item in body["items"]]
    assert aums == sorted(aums)
    # the round's own response carries the counts, not the per-label columns
    summary = done["metrics"]["label_review"]
    assert summary["flagged"] == body["flagged"] and "item_id" not in summary

    # keyset pages by rank; the explicit round gives the same list
    first = api.get(f"/api/v1/projects/{pid}/label-review", params={"limit": 1}).json()
    assert [i["item_id"] for i in first["items"]] == [victim["item_id"]] and first["next_after_rank"] == 1
    rest = api.get(
        f"/api/v1/projects/{pid}/label-review",
        params={"round_id": done["id"], "after_rank": first["next_after_rank"], "limit": 1000},
    ).json()
    assert [i["rank"] for i in rest["items"]] == list(range(2, body["stored"] + 1))
    assert rest["next_after_rank"] is None
    assert [i["item_id"] for i in first["items"] + rest["items"]] == [i["item_id"] for i in body["items"]]

    # fixing the label shows in the review of that round (label now, round_label as trained)
    fix = {"labels": [{"item_id": victim["item_id"], "label": victim["label"]}]}
    assert api.post(f"/api/v1/projects/{pid}/labels", json=fix).status_code == 200
    fixed = api.get(f"/api/v1/projects/{pid}/label-review", params={"limit": 1}).json()["items"][0]
    assert fixed["label"] == classes[victim["label"]] and fixed["round_label"] == classes[wrong]


def test_label_review_round_errors(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    pid = int(make_project(settings=FAST)["id"])
    other = int(make_project(settings=FAST)["id"])
    with session_factory() as session:
        failed = Round(project_id=pid, index=0, status="failed")
        old = Round(project_id=pid, index=1, status="succeeded", metrics={"coverage": 0.5})
        theirs = Round(project_id=other, index=0, status="succeeded", metrics={})
        session.add_all([failed, old, theirs])
        session.commit()
        ids = failed.id, old.id, theirs.id
    url = f"/api/v1/projects/{pid}/label-review"
    assert api.get("/api/v1/projects/999999/label-review").status_code == 404
    for round_id, status, phrase in (
        (999999, 404, "no round 999999"),
        (ids[2], 404, f"no round {ids[2]} in project {pid}"),
        (ids[0], 409, "is failed"),
        (ids[1], 409, "recorded no label review"),
    ):
        response = api.get(url, params={"round_id": round_id})
        assert response.status_code == status, response.text
        assert (
            response.json()["detail"]["field"] == "round_id" and phrase in response.json()["detail"]["reason"]
        )
    latest = api.get(url)  # the latest finished round ran before label review existed
    assert latest.status_code == 409 and "recorded no label review" in latest.json()["detail"]["reason"]
    evaluation = api.get(f"/api/v1/rounds/{ids[0]}/evaluation")
    assert evaluation.status_code == 409 and "is failed" in evaluation.json()["detail"]["reason"]
    assert api.get(f"/api/v1/rounds/{ids[1]}/evaluation").status_code == 409
    assert api.get("/api/v1/rounds/999999/evaluation").status_code == 404


def test_evaluation_of_a_round_with_soft_validation_labels(api: Api, make_project: MakeProject) -> None:
    """Accuracy, ECE and NLL on the validation set; with label distributions, the cross-entropy against
    them, which is at least the entropy of the humans' distribution (Gibbs' inequality)."""
    pid = _project(api, make_project)
    validation = [lab for lab in _labels(api, pid) if lab["role"] == "validation"]
    soft = []
    for lab in validation[:30]:
        dist = [0.1, 0.1, 0.1]
        dist[lab["label"]] = 0.8
        soft.append({"item_id": lab["item_id"], "distribution": dist})
    answer = api.post(f"/api/v1/projects/{pid}/labels", json={"labels": soft})
    assert answer.status_code == 200, answer.text
    done = api.run_round(pid)

    response = api.get(f"/api/v1/rounds/{done['id']}/evaluation")
    assert response.status_code == 200, response.text
    report = response.json()
    # half of validation_size is drawn at the start, the rest inside the stratum (loop.targeted_validation)
    assert report["source"] == "validation" and report["n"] == len(validation) == 60
    assert report["ece_bins"] == 10 and report["human_distributions"] == 30
    assert 0.9 <= report["accuracy"] <= 1.0  # separable blobs
    assert 0.0 <= report["ece"] <= 1.0 and report["nll"] >= 0.0
    entropy = -(30 * (0.8 * math.log(0.8) + 0.2 * math.log(0.1))) / 60  # hard rows add 0
    assert report["human_cross_entropy"] >= entropy
    assert report["second_best_items"] == 0  # 0.1 / 0.1: no strict human second choice
    assert done["metrics"]["evaluation"]["accuracy"] == report["accuracy"]


def test_evaluation_without_soft_labels_has_no_human_cross_entropy(
    api: Api, make_project: MakeProject
) -> None:
    pid = _project(api, make_project)
    done = api.run_round(pid)
    report = api.get(f"/api/v1/rounds/{done['id']}/evaluation").json()
    assert report["human_cross_entropy"] is None and report["human_distributions"] == 0
    assert report["n"] == 60 and report["accuracy"] is not None


def test_a_duq_project_thresholds_on_its_kernel_score(api: Api, make_project: MakeProject) -> None:
    """confidence = kernel scores with DUQ's own certainty max_c K_c ∈ (0, 1]; the round runs, labels, and
    its AUM is recorded on DUQ's log-kernel logits too."""
    pid = _project(api, make_project, uncertainty="duq", confidence="kernel")
    done = api.run_round(pid)
    assert done["metrics"]["label_review"]["training_labels"] == 40
    autos = api.get(f"/api/v1/projects/{pid}/auto-labels", params={"limit": 1000}).json()["items"]
    assert autos and all(0.0 < a["confidence"] <= 1.0 for a in autos)
