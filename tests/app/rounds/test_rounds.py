"""Rounds: the start checks, the round function (claim, idempotence, human labels on top, failures)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.db.base import utcnow
from app.db.models import AutoLabel, HumanLabel, Item, LabelQuery, Round
from app.projects.config import build_config
from app.rounds import auto_labels_repository as auto_repo
from app.rounds import claim as rounds_claim
from app.rounds import repository as rounds_repo
from app.rounds import run as rounds_run
from app.rounds.claim import ClaimLost
from app.rounds.run import execute_round
from app.rounds.write import write_results
from app.settings import Settings
from tests.app.conftest import (
    FAST,
    Api,
    MakeProject,
    RecordingDispatcher,
    blobs,
    count_rows,
    ready_project,
    upload_npz,
)
from tests.app.rounds.conftest import claim_load_run


def _counts(factory: sessionmaker[Session]) -> dict[str, int]:
    return {t: count_rows(factory, t) for t in ("auto_labels", "human_labels", "queries", "items")}


def test_round_start_checks(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session], recorder: RecordingDispatcher
) -> None:
    assert api.post("/api/v1/projects/777/rounds").status_code == 404
    pid = make_project(settings=FAST)["id"]
    upload_npz(api, pid, *blobs(200))
    too_few = api.post(f"/api/v1/projects/{pid}/rounds")
    assert too_few.status_code == 409
    assert too_few.json()["detail"]["field"] == "validation_labels"
    assert (
        "at least 2 human validation labels, got 0 (60 validation items" in too_few.json()["detail"]["reason"]
    )
    queue = api.get(f"/api/v1/projects/{pid}/queue", params={"limit": 1000}).json()["items"]
    val = [q["item_id"] for q in queue if q["purpose"] == "validation"]
    api.post(f"/api/v1/projects/{pid}/labels", json={"labels": [{"item_id": val[0], "label": 0}]})
    assert api.post(f"/api/v1/projects/{pid}/rounds").json()["detail"]["field"] == "validation_labels"
    api.post(f"/api/v1/projects/{pid}/labels", json={"labels": [{"item_id": val[1], "label": 1}]})
    no_train = api.post(f"/api/v1/projects/{pid}/rounds")
    assert no_train.status_code == 409 and no_train.json()["detail"]["field"] == "training_labels"
    assert count_rows(session_factory, "rounds") == 0 and recorder.enqueued == []

    # the project's own minimum
    api.patch(f"/api/v1/projects/{pid}", json={"settings": {"min_validation_labels": 50}})
    api.post(f"/api/v1/projects/{pid}/simulate")
    api.patch(f"/api/v1/projects/{pid}", json={"settings": {"min_validation_labels": 500}})
    need = api.post(f"/api/v1/projects/{pid}/rounds")
    assert need.status_code == 409 and "at least 500" in need.json()["detail"]["reason"]
    api.patch(f"/api/v1/projects/{pid}", json={"settings": {"min_validation_labels": 50}})

    started = api.post(f"/api/v1/projects/{pid}/rounds")
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "queued" and started.json()["n_queries"] == 10
    assert recorder.enqueued == [started.json()["id"]]
    busy = api.post(f"/api/v1/projects/{pid}/rounds")
    assert busy.status_code == 409 and busy.json()["detail"]["field"] == "round"
    locked = api.patch(f"/api/v1/projects/{pid}", json={"settings": {"epsilon": 0.2}})
    assert locked.status_code == 409
    listed = api.get(f"/api/v1/projects/{pid}/rounds").json()["items"]
    assert [r["id"] for r in listed] == recorder.enqueued
    assert api.get("/api/v1/rounds/424242").status_code == 404


def test_execute_round_twice_writes_nothing_twice(
    api: Api,
    make_project: MakeProject,
    session_factory: sessionmaker[Session],
    settings: Settings,
    recorder: RecordingDispatcher,
) -> None:
    pid = ready_project(api, make_project)
    rid = api.post(f"/api/v1/projects/{pid}/rounds").json()["id"]
    execute_round(rid, session_factory, settings)
    first = _counts(session_factory)
    body = api.get(f"/api/v1/rounds/{rid}").json()
    assert body["status"] == "succeeded", body
    assert first["auto_labels"] == body["metrics"]["auto_labeled"] > 0
    assert body["model_version"].endswith("-r0") and body["progress"] == 1.0
    execute_round(rid, session_factory, settings)  # a re-delivered task
    assert _counts(session_factory) == first
    assert api.get(f"/api/v1/rounds/{rid}").json() == body

    # The bulk write itself is idempotent too (unique key per project and item).
    with session_factory() as session:
        rows = session.execute(select(AutoLabel.item_id, AutoLabel.label, AutoLabel.confidence)).all()
        ids = np.array([r[0] for r in rows])
        again = auto_repo.write(
            session, pid, rid, ids, np.array([r[1] for r in rows]), np.array([r[2] for r in rows]), utcnow()
        )
        session.commit()
    assert again == 0 and _counts(session_factory) == first


def test_a_round_taken_over_from_a_dead_worker_writes_once(
    api: Api,
    make_project: MakeProject,
    session_factory: sessionmaker[Session],
    settings: Settings,
    recorder: RecordingDispatcher,
) -> None:
    pid = ready_project(api, make_project)
    rid = api.post(f"/api/v1/projects/{pid}/rounds").json()["id"]
    slow = claim_load_run(rid, session_factory, settings)
    execute_round(rid, session_factory, settings)  # heartbeat fresh: running elsewhere, nothing done
    assert api.get(f"/api/v1/rounds/{rid}").json()["status"] == "running"
    with session_factory() as session:  # the slow worker's heartbeat goes stale
        session.execute(
            update(Round).where(Round.id == rid).values(heartbeat_at=utcnow() - timedelta(hours=1))
        )
        session.commit()
    execute_round(rid, session_factory, settings)  # another worker takes it over and finishes
    done = api.get(f"/api/v1/rounds/{rid}").json()
    assert done["status"] == "succeeded" and done["attempts"] == 2
    before = _counts(session_factory)
    with pytest.raises(ClaimLost):
        write_results(
            rid,
            slow.token,
            session_factory,
            slow.loaded,
            slow.output,
            model_version="x",
            artifact_path=settings.artifacts_dir,
            timings={},
        )
    assert _counts(session_factory) == before
    assert api.get(f"/api/v1/rounds/{rid}").json() == done


def test_an_auto_label_never_overwrites_a_human_label(
    api: Api,
    make_project: MakeProject,
    session_factory: sessionmaker[Session],
    settings: Settings,
    recorder: RecordingDispatcher,
) -> None:
    pid = ready_project(api, make_project)
    rid = api.post(f"/api/v1/projects/{pid}/rounds").json()["id"]
    ran = claim_load_run(rid, session_factory, settings)
    token, loaded, output = ran.token, ran.loaded, ran.output
    auto_ids = loaded.pool_ids[output.auto_mask]
    assert auto_ids.size > 2
    target = int(auto_ids[0])
    predicted = int(output.auto_predicted[0])
    human = (predicted + 1) % 3
    # A human labels the item while the round runs (after its arrays were loaded).
    response = api.post(
        f"/api/v1/projects/{pid}/labels", json={"labels": [{"item_id": target, "label": human}]}
    )
    assert response.status_code == 200
    write_results(
        rid,
        token,
        session_factory,
        loaded,
        output,
        model_version="v",
        artifact_path=settings.artifacts_dir,
        timings={},
    )
    with session_factory() as session:
        assert session.scalar(select(AutoLabel).where(AutoLabel.item_id == target)) is None
        assert session.scalar(select(HumanLabel.label).where(HumanLabel.item_id == target)) == human
        n_auto = session.scalar(select(AutoLabel.id).where(AutoLabel.round_id == rid).limit(1))
    assert n_auto is not None
    assert count_rows(session_factory, "auto_labels") == auto_ids.size - 1

    # A human label given after an auto-label wins in the exports.
    other = int(auto_ids[1])
    api.post(f"/api/v1/projects/{pid}/labels", json={"labels": [{"item_id": other, "label": 0}]})
    lines = api.get(f"/api/v1/projects/{pid}/export", params={"format": "jsonl"}).text.splitlines()
    import json

    records = [json.loads(line) for line in lines]
    mine = [r for r in records if r["item_id"] == other]
    assert len(mine) == 1 and mine[0]["source"] == "human" and mine[0]["label"] == 0
    assert len(records) == len({r["item_id"] for r in records})


def test_library_errors_fail_the_round_with_a_reason(
    api: Api,
    make_project: MakeProject,
    session_factory: sessionmaker[Session],
    settings: Settings,
    recorder: RecordingDispatcher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tbal.loop
    from tbal.errors import TBALInputError

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise TBALInputError("expected targets of shape (5, 3), got (5, 2)")

    pid = ready_project(api, make_project)
    monkeypatch.setattr(tbal.loop, "run_round", broken)
    rid = api.post(f"/api/v1/projects/{pid}/rounds").json()["id"]
    execute_round(rid, session_factory, settings)
    body = api.get(f"/api/v1/rounds/{rid}").json()
    assert body["status"] == "failed"
    assert body["error"] == "TBALInputError: expected targets of shape (5, 3), got (5, 2)"
    assert count_rows(session_factory, "auto_labels") == 0
    monkeypatch.undo()
    retry = api.post(f"/api/v1/projects/{pid}/rounds")  # a failed round does not block the next one
    assert retry.status_code == 202


def test_time_limit_fails_the_round(
    api: Api,
    make_project: MakeProject,
    session_factory: sessionmaker[Session],
    settings: Settings,
    recorder: RecordingDispatcher,
) -> None:
    pid = ready_project(api, make_project)
    rid = api.post(f"/api/v1/projects/{pid}/rounds").json()["id"]
    execute_round(rid, session_factory, settings.model_copy(update={"round_time_limit_s": 1e-9}))
    body = api.get(f"/api/v1/rounds/{rid}").json()
    assert body["status"] == "failed" and body["error"].startswith("RoundTimeLimit: round ran")


def test_transient_database_errors_give_the_round_back_and_propagate(
    api: Api,
    make_project: MakeProject,
    session_factory: sessionmaker[Session],
    settings: Settings,
    recorder: RecordingDispatcher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pid = ready_project(api, make_project)
    rid = api.post(f"/api/v1/projects/{pid}/rounds").json()["id"]

    def flaky(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(rounds_run, "write_results", flaky)
    with pytest.raises(OperationalError):
        execute_round(rid, session_factory, settings)
    body = api.get(f"/api/v1/rounds/{rid}").json()
    assert body["status"] == "queued" and body["attempts"] == 1
    monkeypatch.undo()
    execute_round(rid, session_factory, settings)  # the retry
    assert api.get(f"/api/v1/rounds/{rid}").json()["status"] == "succeeded"


def test_round_queries_move_items_to_training(
    api: Api,
    make_project: MakeProject,
    session_factory: sessionmaker[Session],
    settings: Settings,
    recorder: RecordingDispatcher,
) -> None:
    pid = ready_project(api, make_project, epsilon=0.01)  # too strict to auto-label all: queries remain
    rid = api.post(f"/api/v1/projects/{pid}/rounds").json()["id"]
    execute_round(rid, session_factory, settings)
    with session_factory() as session:
        queried = session.execute(
            select(LabelQuery.item_id, Item.role, LabelQuery.purpose)
            .join(Item, Item.id == LabelQuery.item_id)
            .where(LabelQuery.round_id == rid)
        ).all()
        auto = set(session.scalars(select(AutoLabel.item_id)))
    assert len(queried) == 10
    assert all(role == "train" and purpose == "training" for _, role, purpose in queried)
    assert not auto & {q[0] for q in queried}
    queue = api.get(f"/api/v1/projects/{pid}/queue").json()
    assert {q["item_id"] for q in queue["items"]} == {q[0] for q in queried}
    assert all(q["round_id"] == rid for q in queue["items"])


def test_deleting_a_project_with_a_queued_round(
    api: Api,
    make_project: MakeProject,
    session_factory: sessionmaker[Session],
    settings: Settings,
    recorder: RecordingDispatcher,
) -> None:
    pid = ready_project(api, make_project)
    rid = api.post(f"/api/v1/projects/{pid}/rounds").json()["id"]
    token = rounds_claim.claim(rid, session_factory, settings)
    assert token is not None
    running = api.delete(f"/api/v1/projects/{pid}")
    assert running.status_code == 409 and running.json()["detail"]["field"] == "round"
    with session_factory() as session:
        session.execute(update(Round).where(Round.id == rid).values(status="queued"))
        session.commit()
    assert api.delete(f"/api/v1/projects/{pid}").status_code == 204
    execute_round(rid, session_factory, settings)  # the task arrives after the delete: nothing to do
    assert _counts(session_factory) == {"auto_labels": 0, "human_labels": 0, "queries": 0, "items": 0}


def test_rounds_past_the_planned_ones_keep_the_sum_of_delta_shares_within_delta(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    """Planned 3 rounds (seed 40, budget 60, batches of 10), run 8: once the budget is spent, a human label
    given unasked lets another round start. Every round records its δ share; rounds past the plan get the
    halving tail of :func:`tbal.plan.delta_share`, and the shares sum to at most δ (issue 12)."""
    from tbal.plan import delta_share

    # strict ε: the pool is never emptied; the default schedule (final), which these shares follow
    pid = ready_project(api, make_project, epsilon=0.01, delta_schedule="final")
    config = build_config(api.get(f"/api/v1/projects/{pid}").json()["settings"])
    assert config.loop.planned_rounds == 3
    shares = []
    for k in range(8):
        if k >= config.loop.planned_rounds:  # the budget is spent: a label the service did not ask for
            with session_factory() as session:
                item = session.scalars(
                    select(Item.id).where(Item.project_id == pid, Item.role == "pool").order_by(Item.id)
                ).first()
            assert api.post(
                f"/api/v1/projects/{pid}/labels", json={"labels": [{"item_id": item, "label": 0}]}
            )
        done = api.run_round(pid)
        assert done["index"] == k
        shares.append(done["metrics"]["delta_round"])
    delta = config.thresholds.delta
    assert shares == [min(delta_share(k, config), delta - sum(shares[:k])) for k in range(8)]
    assert all(s > 0 for s in shares[3:])  # past the plan every round can still certify
    assert shares[4] == pytest.approx(shares[3] / 2) and shares[7] == pytest.approx(shares[3] / 16)
    assert sum(shares) <= delta
    with session_factory() as session:
        assert rounds_repo.delta_spent(session, pid) == pytest.approx(sum(shares))


def test_prediction_reads_the_input_scale_from_the_round_artifact(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    """A project of 0..255 images: the round's artifact records scale 255, and /predict divides a dark new
    image (every pixel ≤ 16, which alone would look like a 4-bit image) by 255, not by 16."""
    from tbal.artifacts import load_artifacts
    from tbal.data import prepare_inputs
    from tbal.loop import score_points

    X, y = blobs(400, d=64, seed=5)
    images = np.rint((X - X.min()) / (X.max() - X.min()) * 255).astype(np.uint8).reshape(-1, 8, 8)
    settings = {**FAST, "model": "lenet5", "epochs": 2}
    pid = int(make_project(data_kind="image", input_shape=[8, 8], settings=settings)["id"])
    items = [
        {"external_id": str(i), "image": images[i].tolist(), "ground_truth": int(y[i])} for i in range(400)
    ]
    assert api.post(f"/api/v1/projects/{pid}/items", json={"items": items}).status_code == 200
    assert api.post(f"/api/v1/projects/{pid}/simulate").status_code == 200
    done = api.run_round(pid)
    assert done["metrics"]["input_scale"] == 255.0
    with session_factory() as session:
        finished = session.get(Round, done["id"])
        assert finished is not None and finished.artifact_path is not None
        path = finished.artifact_path
    artifacts = load_artifacts(path)
    assert artifacts.input_scale == 255.0
    dark = (np.arange(64) % 17).astype(np.uint8).reshape(1, 8, 8)
    answer = api.post(f"/api/v1/projects/{pid}/predict", json={"items": [{"image": dark[0].tolist()}]})
    assert answer.status_code == 200, answer.text
    confidence = answer.json()["predictions"][0]["confidence"]
    for scale, same in ((255.0, True), (16.0, False)):
        prepared, _ = prepare_inputs(dark, scale=scale)
        _, scores, _ = score_points(artifacts.model, artifacts.confidence, artifacts.thresholds, prepared)
        assert (confidence == pytest.approx(float(scores[0]), abs=1e-6)) is same, scale


def test_the_round_row_says_write_while_its_results_are_written(
    api: Api,
    make_project: MakeProject,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 15 item 8: the heartbeat stops before the write, so the row must say ``write`` by then."""
    pid = ready_project(api, make_project)
    seen: list[str | None] = []
    original = rounds_run.write_results

    def spy(round_id: int, *args: Any, **kwargs: Any) -> None:
        with session_factory() as session:
            round_ = session.get(Round, round_id)
            seen.append(None if round_ is None else round_.stage)
        original(round_id, *args, **kwargs)

    monkeypatch.setattr(rounds_run, "write_results", spy)
    api.run_round(pid)
    assert seen == ["write"]


def test_a_round_that_reads_nothing_of_its_pool_still_serves_a_model(
    api: Api, make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random queries under the ``final`` schedule: round 0 certifies nothing and fixes no stratum, so the
    library leaves its pool unscored (:func:`tbal.loop.run_round`). The round still queues its queries,
    reports its classifier on the validation set, and saves the model that /predict serves."""
    from tbal import loop

    reads: list[int] = []
    real = loop._pool_rows_read

    def spy(*args: Any) -> np.ndarray:
        rows = real(*args)
        reads.append(int(rows.size))
        return rows

    monkeypatch.setattr(loop, "_pool_rows_read", spy)
    pid = ready_project(api, make_project, epsilon=0.01, delta_schedule="final", query_strategy="random")
    done = api.run_round(pid)
    assert reads == [0]
    metrics = done["metrics"]
    assert metrics["delta_round"] == 0 and metrics["auto_labeled"] == 0 and metrics["queries"] == 10
    assert [c["auto_labeled"] for c in metrics["thresholds"]] == [0, 0, 0]
    assert metrics["evaluation"]["accuracy"] > 0.5
    X, _ = blobs(3, seed=9)
    answer = api.post(
        f"/api/v1/projects/{pid}/predict", json={"items": [{"features": x.tolist()} for x in X]}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["round_id"] == done["id"] and len(answer.json()["predictions"]) == 3
