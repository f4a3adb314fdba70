"""The project setting ``validation_floor``: when a round's removals leave fewer validation items than the
floor, the round queues validation top-ups drawn uniformly from the pool that is left, instead of as many
training queries, paid from ``label_budget`` (as ``loop.validation_floor`` in :func:`tbal.loop.run_tbal`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import AutoLabel, Item, LabelQuery
from app.rounds.load import load_round
from app.settings import Settings
from tests.app.conftest import Api, MakeProject, blobs, count_rows, ready_project

FLOOR = 95
BUDGET = 140
BATCH = 50
# On the mixed blobs below, the first round auto-labels most of the pool and removes about three quarters
# of the 300 validation items (71 are left), fewer than FLOOR; the shortfall (24) is less than a batch, so
# the round queues both top-ups and training queries.
FLOOR_SETTINGS: dict[str, Any] = {
    "validation_size": 300,
    "label_budget": BUDGET,
    "batch_size": BATCH,
    "validation_floor": FLOOR,
    "targeted_validation": 0,  # the whole set drawn at the start, so that round 0 depletes it
}


def _mixed_blob_project(api: Api, make_project: MakeProject, n: int = 1500, **settings: Any) -> int:
    """:func:`tests.app.conftest.ready_project` on blobs of which 30% were moved to the middle of the
    centres, where no class can be told: those stay in the pool (and in the validation set) after the
    first round."""
    X, y = blobs(n, seed=5)
    rng = np.random.default_rng(6)
    mixed = rng.random(n) < 0.3
    X[mixed] = X.mean(axis=0) + rng.normal(scale=0.3, size=(int(mixed.sum()), X.shape[1])).astype(np.float32)
    return ready_project(api, make_project, data=(X, y), **settings)


def _round_queries(factory: sessionmaker[Session], round_id: int) -> list[Any]:
    """(item id, purpose, item role) of the queries round ``round_id`` made."""
    with factory() as session:
        stmt = (
            select(LabelQuery.item_id, LabelQuery.purpose, Item.role)
            .join(Item, Item.id == LabelQuery.item_id)
            .where(LabelQuery.round_id == round_id)
        )
        return list(session.execute(stmt).all())


def test_a_depleted_validation_set_is_topped_up_from_the_pool(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    pid = _mixed_blob_project(api, make_project, **FLOOR_SETTINGS)
    with session_factory() as session:
        pool_before = set(session.scalars(select(Item.id).where(Item.project_id == pid, Item.role == "pool")))

    first = api.run_round(pid)
    metrics = first["metrics"]
    left = metrics["validation_left"]
    assert metrics["validation_removed"] > 0 and left < FLOOR, "the first round must deplete the set"
    top_ups = FLOOR - left  # less than a batch, within the budget left (140 - 40 seed labels)
    assert metrics["validation_queued"] == top_ups
    assert metrics["queries"] == first["n_queries"] == BATCH - top_ups

    # Top-ups: purpose and role validation, drawn from the pool that was left (never auto-labeled, never
    # a training query); the training queries are the rest of the batch.
    queries = _round_queries(session_factory, first["id"])
    validation = {i for i, purpose, role in queries if purpose == "validation" and role == "validation"}
    training = {i for i, purpose, role in queries if purpose == "training" and role == "train"}
    assert len(validation) == top_ups and len(training) == BATCH - top_ups
    assert len(queries) == BATCH
    with session_factory() as session:
        auto = set(session.scalars(select(AutoLabel.item_id).where(AutoLabel.project_id == pid)))
    assert validation <= pool_before and not validation & auto and not validation & training

    queue = api.get(f"/api/v1/projects/{pid}/queue", params={"limit": 1000}).json()
    queued = {q["item_id"]: q for q in queue["items"]}
    assert all(
        queued[i]["purpose"] == "validation" and queued[i]["round_id"] == first["id"] for i in validation
    )
    assert queue["open_validation"] == top_ups and queue["open_training"] == BATCH - top_ups
    counts = api.get(f"/api/v1/projects/{pid}").json()["counts"]
    assert counts["budget_used"] == 40 + BATCH  # the seed, the training queries and the top-ups

    # Answered, the top-ups are validation labels: the next round validates on them and never trains on them.
    answered = api.post(f"/api/v1/projects/{pid}/simulate").json()
    assert answered["validation"] == top_ups and answered["training"] == BATCH - top_ups
    loaded = load_round(first["id"], session_factory, settings)
    assert validation <= set(loaded.val_ids.tolist()) and not validation & set(loaded.train_ids.tolist())
    assert training <= set(loaded.train_ids.tolist())
    assert loaded.val_ids.size == FLOOR  # every validation item was labeled: the left ones and the top-ups
    assert loaded.plan.query_budget == BATCH  # 140 - 40 - 50 left

    second = api.run_round(pid)
    assert second["metrics"]["validation_labels"] == loaded.val_ids.size
    assert second["metrics"]["training_labels"] == 40 + BATCH - top_ups
    spent = second["metrics"]["queries"] + second["metrics"]["validation_queued"]
    assert spent == BATCH and second["n_queries"] == second["metrics"]["queries"]

    # The budget holds: training labels + top-ups never exceed label_budget; the next round queries nothing.
    api.post(f"/api/v1/projects/{pid}/simulate")
    assert api.get(f"/api/v1/projects/{pid}").json()["counts"]["budget_used"] == BUDGET
    third = api.run_round(pid)
    assert third["n_queries"] == 0 and third["metrics"]["validation_queued"] == 0


def test_floor_zero_leaves_rounds_as_before(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    """Same data and seed: a project with ``validation_floor`` = 0 queries exactly what one without it
    does, and queues no validation top-up."""
    without = _mixed_blob_project(api, make_project, **{**FLOOR_SETTINGS, "validation_floor": None})
    zero = _mixed_blob_project(api, make_project, **{**FLOOR_SETTINGS, "validation_floor": 0})
    runs = [api.run_round(pid) for pid in (without, zero)]
    assert runs[0]["metrics"]["validation_left"] < FLOOR  # the floor above would have topped up here
    assert runs[0]["metrics"]["auto_labeled"] == runs[1]["metrics"]["auto_labeled"]
    asked = []
    for pid, done in zip((without, zero), runs, strict=True):
        queries = _round_queries(session_factory, done["id"])
        assert {(purpose, role) for _, purpose, role in queries} == {("training", "train")}
        assert done["metrics"]["validation_queued"] == 0 and done["n_queries"] == BATCH
        with session_factory() as session:
            first_id = session.scalar(select(Item.id).where(Item.project_id == pid).order_by(Item.id))
        assert first_id is not None
        asked.append(sorted(i - first_id for i, _, _ in queries))  # same uploads: same relative ids
    assert asked[0] == asked[1]


@pytest.mark.parametrize("value", [-1, 2.5, "many"])
def test_bad_validation_floor_is_422_and_writes_nothing(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session], value: Any
) -> None:
    created = api.post(
        "/api/v1/projects",
        json={
            "name": "bad-floor",
            "classes": ["a", "b"],
            "data_kind": "features",
            "input_shape": [3],
            "settings": {"validation_floor": value},
        },
    )
    assert created.status_code == 422, created.text
    assert created.json()["detail"]["field"] == "settings.validation_floor"
    assert created.json()["detail"]["reason"]
    assert count_rows(session_factory, "projects") == 0

    project = make_project(settings={"validation_floor": 5})
    patched = api.patch(f"/api/v1/projects/{project['id']}", json={"settings": {"validation_floor": value}})
    assert patched.status_code == 422 and patched.json()["detail"]["field"] == "settings.validation_floor"
    kept = api.get(f"/api/v1/projects/{project['id']}").json()
    assert kept["settings"]["validation_floor"] == 5 and kept["config"]["loop"]["validation_floor"] == 5
