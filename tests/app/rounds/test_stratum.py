"""Validation drawn inside a stratum (project setting ``targeted_validation``; :mod:`tbal.plan`, "The
stratum"): the round the plan names records the stratum and queues the items it drew inside it as
validation items, paid from ``validation_size``, never from ``label_budget``; later rounds load the stratum
as flags over their own items (items uploaded after it was fixed are outside it) and auto-label inside it
only. tests/app/test_one_path.py holds the same rounds to :func:`tbal.loop.run_tbal`'s."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.dashboard import queries as dashboard_queries
from app.db.base import utcnow
from app.db.models import AutoLabel, Item, LabelQuery, Project, ProjectStratum, Round, StratumItem
from app.labels import repository as labels_repo
from app.rounds import stratum_repository as stratum_repo
from app.rounds.load import load_round
from app.rounds.run import execute_round
from app.settings import Settings
from tests.app.conftest import Api, MakeProject, RecordingDispatcher, blobs, ready_project, upload_npz

TARGETED = 20
# FAST's budgets (seed 40, label_budget 60, batch 10) plan 3 rounds: round 1 fixes the stratum, round 2
# (the last planned one, which the ``final`` schedule lets certify) auto-labels inside it, its classifier
# trained on the validation items outside it too.
STRATUM_SETTINGS: dict[str, Any] = {
    "targeted_validation": TARGETED,
    "delta_schedule": "final",
    "train_outside_stratum": True,
    "stratum_error_factor": 0.01,  # the easy blobs' stratum stays near half of the pool
}


def _validation_queries(factory: sessionmaker[Session], round_id: int) -> dict[int, str]:
    """{item id: item role} of the validation queries round ``round_id`` made."""
    with factory() as session:
        stmt = (
            select(LabelQuery.item_id, Item.role)
            .join(Item, Item.id == LabelQuery.item_id)
            .where(LabelQuery.round_id == round_id, LabelQuery.purpose == "validation")
        )
        return {int(i): str(role) for i, role in session.execute(stmt)}


def _members(factory: sessionmaker[Session], pid: int) -> tuple[set[int], set[int]]:
    """(the stratum's item ids, those drawn inside it) as stored."""
    with factory() as session:
        rows = session.execute(
            select(StratumItem.item_id, StratumItem.targeted).where(StratumItem.project_id == pid)
        ).all()
    return {int(i) for i, _ in rows}, {int(i) for i, t in rows if t}


def test_the_stratum_round_queues_targeted_items_paid_from_the_validation_size(
    api: Api,
    make_project: MakeProject,
    session_factory: sessionmaker[Session],
    settings: Settings,
    recorder: RecordingDispatcher,
) -> None:
    pid = ready_project(api, make_project, **STRATUM_SETTINGS)
    counts = api.get(f"/api/v1/projects/{pid}").json()["counts"]
    assert counts["validation_labels"] == 120 - TARGETED, "the initial draw leaves the targeted ones out"

    for index in (0, 1):
        started = api.post(f"/api/v1/projects/{pid}/rounds")
        assert started.status_code == 202, started.text
        round_id = started.json()["id"]
        loaded = load_round(round_id, session_factory, settings)
        assert loaded.stratum is None and loaded.plan.targeted == (TARGETED if index == 1 else 0)
        execute_round(round_id, session_factory, settings)
        done = api.wait_round(round_id)
        assert done["status"] == "succeeded", done
        if index == 0:
            assert _validation_queries(session_factory, round_id) == {}
            assert api.post(f"/api/v1/projects/{pid}/simulate").status_code == 200

    # Round 1 fixed the stratum: its targeted items are validation queries of the round, role validation,
    # members of the stratum, and the round's metrics count them as queued validation items.
    targeted_queries = _validation_queries(session_factory, round_id)
    assert len(targeted_queries) == TARGETED and set(targeted_queries.values()) == {"validation"}
    members, targeted = _members(session_factory, pid)
    assert targeted == set(targeted_queries) and targeted <= members
    with session_factory() as session:
        fixed = session.get(ProjectStratum, pid)
        assert fixed is not None and (fixed.round_id, fixed.targeted) == (round_id, TARGETED)
        assert fixed.cut is not None and 0.0 < fixed.cut <= 1.0
        assert stratum_repo.is_fixed(session, pid)
    assert done["metrics"]["validation_queued"] == TARGETED and done["n_queries"] == 10

    # Paid from validation_size: the budget counts the seed and the two batches of training queries only.
    with session_factory() as session:
        assert labels_repo.count_validation_top_ups(session, pid) == 0
        answered_top_ups, budget_queued = dashboard_queries.budget_queries(session, pid)
        assert (answered_top_ups, budget_queued) == (0, 10)  # the open training queries, not the targeted
    assert api.get(f"/api/v1/projects/{pid}").json()["counts"]["budget_used"] == 60
    summary = api.get(f"/api/v1/projects/{pid}/summary").json()["counts"]
    assert (summary["budget_used"], summary["budget_queued"], summary["open_validation"]) == (
        60,
        10,
        TARGETED,
    )

    # Items uploaded after the stratum was fixed are outside it; the targeted items, once labeled, are
    # validation items flagged as drawn inside it.
    X_new, y_new = blobs(30, seed=9)
    upload_npz(api, pid, X_new, y_new, id_prefix="late-")
    with session_factory() as session:
        late = set(session.scalars(select(Item.id).where(Item.external_id.like("late-%"))))
    assert api.post(f"/api/v1/projects/{pid}/simulate").status_code == 200
    started = api.post(f"/api/v1/projects/{pid}/rounds")
    assert started.status_code == 202, started.text
    last_id = started.json()["id"]
    loaded = load_round(last_id, session_factory, settings)
    stratum = loaded.stratum
    assert stratum is not None and loaded.plan.targeted == 0 and loaded.plan.query_budget == 0
    assert late <= set(loaded.pool_ids.tolist()) and not late & set(loaded.pool_ids[stratum.pool].tolist())
    assert set(loaded.pool_ids[stratum.pool].tolist()) <= members
    assert set(loaded.val_ids[stratum.validation].tolist()) <= members
    assert set(loaded.val_ids[stratum.targeted].tolist()) == targeted
    assert not (stratum.targeted & ~stratum.validation).any()

    execute_round(last_id, session_factory, settings)
    last = api.wait_round(last_id)
    assert last["status"] == "succeeded"
    outside = int((~stratum.validation).sum())
    assert outside > 0 and last["metrics"]["validation_labels_trained"] == outside
    assert done["metrics"]["validation_labels_trained"] == 0, "a round that cannot auto-label trains on none"
    with session_factory() as session:
        auto = set(session.scalars(select(AutoLabel.item_id).where(AutoLabel.round_id == last_id)))
    assert auto and auto <= members, "the round after the stratum's auto-labels inside it only"


def test_targeted_items_are_no_top_ups(session_factory: sessionmaker[Session]) -> None:
    """Of a round's validation queries, those whose item the stratum marks ``targeted`` are not counted
    against ``label_budget``; the top-ups and the training queries are, the initial draw is not."""
    now = utcnow()
    with session_factory() as session:
        project = Project(name="p", classes=["a", "b"], data_kind="features", input_shape=[2], settings={})
        session.add(project)
        session.flush()
        items = [Item(project_id=project.id, external_id=str(k), data=b"\x00" * 8) for k in range(6)]
        round_ = Round(project_id=project.id, index=0, status="succeeded")
        session.add_all([*items, round_])
        session.flush()
        ids = np.array([item.id for item in items], dtype=np.int64)
        purposes = [(None, "validation"), (round_.id, "training")] + [(round_.id, "validation")] * 4
        for item_id, (rid, purpose) in zip(ids.tolist(), purposes, strict=True):
            session.add(LabelQuery(project_id=project.id, item_id=item_id, round_id=rid, purpose=purpose))
        session.flush()
        assert labels_repo.count_validation_top_ups(session, project.id) == 4
        # the stratum holds items 2..5, of which 4 and 5 were drawn inside it
        stratum_repo.fix(session, project.id, round_.id, cut=0.7, members=ids[2:], targeted=ids[4:], now=now)
        assert labels_repo.count_validation_top_ups(session, project.id) == 2
        assert dashboard_queries.budget_queries(session, project.id) == (0, 3)  # training + 2 top-ups
        stored = stratum_repo.load(session, project.id)
        assert stored is not None
        inside, drawn = stored.flags(ids)
        assert inside.tolist() == [False, False, True, True, True, True]
        assert drawn.tolist() == [False, False, False, False, True, True]
        session.commit()


def test_the_stratum_settings_reach_the_library(api: Api, make_project: MakeProject) -> None:
    body = make_project(
        settings={
            "targeted_validation": 30,
            "stratum_share": 0.3,
            "stratum_error_factor": 2.0,
            "train_outside_stratum": True,
        }
    )
    loop = body["config"]["loop"]
    assert (
        loop["targeted_validation"],
        loop["stratum_share"],
        loop["stratum_error_factor"],
        loop["train_outside_stratum"],
    ) == (30, 0.3, 2.0, True)
    changed = api.patch(f"/api/v1/projects/{body['id']}", json={"settings": {"stratum_share": 0.0}})
    assert changed.status_code == 422 and changed.json()["detail"]["field"] == "settings.stratum_share"
    off = api.patch(f"/api/v1/projects/{body['id']}", json={"settings": {"train_outside_stratum": False}})
    assert off.status_code == 200 and off.json()["config"]["loop"]["train_outside_stratum"] is False
    bad = api.patch(f"/api/v1/projects/{body['id']}", json={"settings": {"train_outside_stratum": "often"}})
    assert bad.status_code == 422 and "train_outside_stratum" in bad.text


def test_a_presets_stratum_is_a_share_that_follows_validation_size(make_project: MakeProject) -> None:
    """text-paper draws half of N_v inside the stratum: with validation_size 500 that is 250 (a count of
    800 was a 422 on a setting the user never set), and a share can be set as one."""
    body = make_project(settings={"preset": "text-paper", "validation_size": 500})
    assert body["config"]["loop"]["targeted_validation"] == 0.5
    shared = make_project(settings={"targeted_validation": 0.25})
    assert shared["config"]["loop"]["targeted_validation"] == 0.25


def test_changing_targeted_validation_redraws_open_sets(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    """The initial draw takes validation_size − targeted_validation items: while no query of it is
    answered, a PATCH of targeted_validation redraws it at the new size."""
    settings = {"validation_size": 120, "seed_size": 40, "label_budget": 60, "targeted_validation": 0}
    pid = int(make_project(settings=settings)["id"])
    upload_npz(api, pid, *blobs(400, seed=5))

    def drawn() -> int:
        with session_factory() as session:
            stmt = select(Item.id).where(Item.project_id == pid, Item.role == "validation")
            return len(session.scalars(stmt).all())

    assert drawn() == 120
    changed = api.patch(f"/api/v1/projects/{pid}", json={"settings": {"targeted_validation": TARGETED}})
    assert changed.status_code == 200, changed.text
    assert drawn() == 120 - TARGETED
