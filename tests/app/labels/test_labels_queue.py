"""Human labels (class, distribution, votes), the queue and the draw of its sets at upload, and simulation."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import HumanLabel, Item, LabelQuery
from tests.app.conftest import Api, blobs, count_rows

MakeProject = Callable[..., dict[str, Any]]
# the whole validation set drawn at upload (the stratum, half of it by default, is test_stratum.py's)
SMALL = {
    "validation_size": 20,
    "seed_size": 10,
    "label_budget": 30,
    "batch_size": 5,
    "targeted_validation": 0,
}


def _ingest(api: Api, pid: int, n: int, *, truth: bool = True, start: int = 0) -> None:
    X, y = blobs(n, seed=start)
    arrays: dict[str, Any] = {"X": X, "external_ids": np.array([f"e{i}" for i in range(start, start + n)])}
    if truth:
        arrays["y"] = y
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    response = api.post(
        f"/api/v1/projects/{pid}/items/upload",
        content=buffer.getvalue(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 200, response.text


def _all_queue(api: Api, pid: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after = 0
    while True:
        page = api.get(f"/api/v1/projects/{pid}/queue", params={"after_id": after, "limit": 7}).json()
        items += page["items"]
        if page["next_after_id"] is None:
            return items
        after = page["next_after_id"]


def test_upload_draws_validation_and_seed_sets(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    project = make_project(settings=SMALL, seed=3)
    pid = project["id"]
    empty = api.get(f"/api/v1/projects/{pid}/queue").json()
    assert empty["items"] == [] and empty["open_validation"] == 0  # nothing to draw from yet
    _ingest(api, pid, 100)
    queue = _all_queue(api, pid)
    purposes = [q["purpose"] for q in queue]
    assert purposes.count("validation") == 20 and purposes.count("training") == 10
    assert len({q["item_id"] for q in queue}) == 30
    assert _all_queue(api, pid) == queue  # drawn once
    with session_factory() as session:
        roles = {i: r for i, r in session.execute(select(Item.id, Item.role))}
    assert sum(r == "validation" for r in roles.values()) == 20
    assert sum(r == "train" for r in roles.values()) == 10
    # The draw is a seeded uniform sample: the same seed on the same ids draws the same sets.
    ids = np.array(sorted(roles), dtype=np.int64)
    order = np.random.default_rng(3).permutation(ids.size)
    assert {q["item_id"] for q in queue if q["purpose"] == "validation"} == set(ids[order[:20]].tolist())
    with_data = api.get(f"/api/v1/projects/{pid}/queue", params={"include_data": True, "limit": 1}).json()
    assert len(with_data["items"][0]["data"]) == 4


def _validation_externals(factory: sessionmaker[Session], pid: int) -> set[str]:
    with factory() as session:
        stmt = select(Item.external_id).where(Item.project_id == pid, Item.role == "validation")
        return set(session.scalars(stmt))


def _validation_ids(api: Api, pid: int) -> set[int]:
    return {q["item_id"] for q in _all_queue(api, pid) if q["purpose"] == "validation"}


def test_sets_are_redrawn_from_the_whole_pool_until_answered(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    """An upload in several requests is sampled as a whole: each upload draws the sets again from the
    whole pool (the same draw as one upload of everything) until a human answers one of their queries;
    then they are fixed. A change of their sizes redraws them while they are open."""
    pid = make_project(settings=SMALL, seed=3)["id"]
    whole = make_project(settings=SMALL, seed=3)["id"]
    _ingest(api, pid, 50)
    first = _validation_externals(session_factory, pid)
    assert len(first) == 20 and all(int(e[1:]) < 50 for e in first)  # the first request only, for now
    _ingest(api, pid, 50, start=50)
    _ingest(api, whole, 100)
    drawn = _validation_externals(session_factory, pid)
    assert drawn == _validation_externals(session_factory, whole)  # as if uploaded at once
    assert any(int(e[1:]) >= 50 for e in drawn)
    with session_factory() as session:
        roles = [r for (r,) in session.execute(select(Item.role).where(Item.project_id == pid))]
        queries = session.scalar(
            select(func.count()).select_from(LabelQuery).where(LabelQuery.project_id == pid)
        )
    assert roles.count("validation") == 20 and roles.count("train") == 10 and queries == 30

    api.patch(f"/api/v1/projects/{pid}", json={"settings": {"validation_size": 25}})
    assert len(_validation_ids(api, pid)) == 25
    answered = min(_validation_ids(api, pid))
    api.post(f"/api/v1/projects/{pid}/labels", json={"labels": [{"item_id": answered, "label": 0}]})
    fixed = _validation_ids(api, pid) | {answered}
    _ingest(api, pid, 50, start=100)
    api.patch(f"/api/v1/projects/{pid}", json={"settings": {"validation_size": 30}})
    assert _validation_ids(api, pid) | {answered} == fixed


def test_labels_of_each_kind_and_unsolicited_ones(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    pid = make_project(settings=SMALL)["id"]
    _ingest(api, pid, 60)
    queue = _all_queue(api, pid)
    val = [q for q in queue if q["purpose"] == "validation"]
    asked = {q["item_id"] for q in queue}
    with session_factory() as session:
        free = [i for i in session.scalars(select(Item.id).order_by(Item.id)) if i not in asked][:2]
    labels = [
        {"item_id": val[0]["item_id"], "label": "b"},
        {"external_id": val[1]["external_id"], "distribution": [0.2, 0.5, 0.3]},
        {"item_id": val[2]["item_id"], "votes": {"ann1": "c", "ann2": 2, "ann3": "a"}},
        {"item_id": free[0], "label": 0},
        {"item_id": free[1], "votes": {"x": "a", "y": "b"}},
    ]
    response = api.post(f"/api/v1/projects/{pid}/labels", json={"labels": labels})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "received": 5,
        "created": 5,
        "updated": 0,
        "validation": 3,
        "training": 2,
        "answered_queries": 3,
    }
    with session_factory() as session:
        stored = {h.item_id: h for h in session.scalars(select(HumanLabel))}
        roles = {i: r for i, r in session.execute(select(Item.id, Item.role))}
    assert stored[val[0]["item_id"]].label == 1 and stored[val[0]["item_id"]].distribution is None
    assert stored[val[1]["item_id"]].label == 1
    assert stored[val[1]["item_id"]].distribution == pytest.approx([0.2, 0.5, 0.3])
    votes = stored[val[2]["item_id"]]
    assert votes.label == 2 and votes.distribution == pytest.approx([1 / 3, 0, 2 / 3])
    assert votes.votes == {"ann1": 2, "ann2": 2, "ann3": 0}
    assert stored[free[1]].label == 0  # a tie goes to the lowest class index
    assert roles[free[0]] == "train" and roles[free[1]] == "train"  # unsolicited labels train
    assert roles[val[0]["item_id"]] == "validation"
    queue_after = _all_queue(api, pid)
    assert {q["item_id"] for q in queue_after} == asked - {v["item_id"] for v in val[:3]}

    again = api.post(f"/api/v1/projects/{pid}/labels", json={"labels": [{"item_id": free[0], "label": "c"}]})
    assert again.json()["updated"] == 1 and again.json()["created"] == 0
    page = api.get(f"/api/v1/projects/{pid}/labels", params={"limit": 100}).json()
    assert len(page["items"]) == 5
    assert {h["item_id"]: h["class_name"] for h in page["items"]}[free[0]] == "c"


def _bad_labels(item: int, other: int) -> list[tuple[str, list[dict[str, Any]], str, int]]:
    return [
        ("unknown class name", [{"item_id": item, "label": "zebra"}], "labels.0.label", 422),
        ("class index out of range", [{"item_id": item, "label": 3}], "labels.0.label", 422),
        (
            "distribution not summing to 1",
            [{"item_id": item, "distribution": [0.5, 0.4, 0.3]}],
            "labels.0.distribution",
            422,
        ),
        (
            "distribution of wrong length",
            [{"item_id": item, "distribution": [0.5, 0.5]}],
            "labels.0.distribution",
            422,
        ),
        (
            "negative probability",
            [{"item_id": item, "distribution": [1.5, -0.5, 0.0]}],
            "labels.0.distribution",
            422,
        ),
        (
            "votes for a missing class",
            [{"item_id": item, "votes": {"ann1": "a", "ann2": "zebra"}}],
            "labels.0.votes.ann2",
            422,
        ),
        ("no votes", [{"item_id": item, "votes": {}}], "labels.0.votes", 422),
        ("unknown item", [{"item_id": 10**9, "label": 0}], "labels.0.item_id", 422),
        ("unknown external id", [{"external_id": "nope", "label": 0}], "labels.0.external_id", 422),
        ("two kinds at once", [{"item_id": item, "label": 0, "votes": {"a": 0}}], "labels.0", 422),
        ("item twice", [{"item_id": other, "label": 0}, {"item_id": other, "label": 1}], "labels.1", 422),
    ]


@pytest.mark.parametrize("case", range(11))
def test_bad_label_batches_write_nothing(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session], case: int
) -> None:
    pid = make_project(settings=SMALL)["id"]
    _ingest(api, pid, 40)
    queue = _all_queue(api, pid)
    good = {"item_id": queue[0]["item_id"], "label": 0}
    name, bad, field, status = _bad_labels(queue[1]["item_id"], queue[2]["item_id"])[case]
    response = api.post(f"/api/v1/projects/{pid}/labels", json={"labels": [good, *bad]})
    assert response.status_code == status, (name, response.text)
    detail = response.json()["detail"]
    shifted = field.replace("labels.0", "labels.1", 1) if field.startswith("labels.0") else field
    shifted = "labels.2" if name == "item twice" else shifted
    assert detail["field"] == shifted, (name, detail)
    assert detail["reason"]
    assert count_rows(session_factory, "human_labels") == 0
    with session_factory() as session:
        assert session.scalar(select(LabelQuery.id).where(LabelQuery.answered.is_(True))) is None


def test_labels_for_an_unknown_project_are_404(api: Api) -> None:
    response = api.post("/api/v1/projects/12345/labels", json={"labels": [{"item_id": 1, "label": 0}]})
    assert response.status_code == 404
    assert response.json()["detail"]["field"] == "project_id"


def test_simulate_answers_the_queue_from_ground_truth(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    pid = make_project(settings=SMALL)["id"]
    _ingest(api, pid, 50)
    result = api.post(f"/api/v1/projects/{pid}/simulate").json()
    assert result == {"answered": 30, "validation": 20, "training": 10}
    assert api.get(f"/api/v1/projects/{pid}/queue").json()["items"] == []
    _, y = blobs(50)
    with session_factory() as session:
        rows = session.execute(
            select(Item.external_id, HumanLabel.label, HumanLabel.source).join(HumanLabel)
        ).all()
    assert len(rows) == 30
    assert all(label == y[int(ext[1:])] and source == "simulation" for ext, label, source in rows)


def test_simulate_without_ground_truth_is_422_and_writes_nothing(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    pid = make_project(settings=SMALL)["id"]
    _ingest(api, pid, 50, truth=False)
    response = api.post(f"/api/v1/projects/{pid}/simulate")
    assert response.status_code == 422
    assert response.json()["detail"]["field"] == "ground_truth"
    assert "30 queued items have no ground truth" in response.json()["detail"]["reason"]
    assert count_rows(session_factory, "human_labels") == 0
