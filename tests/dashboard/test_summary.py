"""The dashboard's JSON and page over HTTP (in process, on SQLite and PostgreSQL like the service tests):

- the summary of a project in a state with every corner (auto-labels on pool and on human-labeled items,
  human labels on pool items, removed validation items, open queries, a running round) equals counts
  made here by brute force over the raw rows, and the unlabeled pool equals the repository's anti-join;
- the reliability diagram a real round records equals one recomputed here from its saved artifacts on
  its D_th rows, reconstructed from the round's seed;
- the page and its files are served with a strict CSP, and nothing else is;
- with many items the summary stays small and fast (aggregated in SQL).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from app.db.base import utcnow
from app.db.models import AutoLabel, HumanLabel, Item, LabelQuery, Project, Round
from app.items import repository as items_repo
from app.items.arrays import from_bytes, layout_of, model_inputs
from tbal.artifacts import load_artifacts
from tbal.loop import score_points
from tbal.metrics import expected_calibration_error, reliability_diagram
from tests.app.conftest import Api, blobs, upload_npz

API = "/api/v1"
SMALL = {
    "delta_schedule": "uniform",  # every round may auto-label (the default certifies in the last one)
    "validation_size": 12,
    "targeted_validation": 0,  # all 12 drawn at upload
    "seed_size": 6,
    "label_budget": 9,
    "batch_size": 3,
    "calibration_fraction": 0.25,
    "model": "mlp",
    "hidden": [16],
    "epochs": 3,
    "confidence": "softmax",
}


def _metrics(k: int, auto: list[int], reliability: bool) -> dict[str, Any]:
    """A round's report as the round writes it (the fields :class:`tbal.reports.RoundReport` needs)."""
    return {
        "pool_size": 40,
        "auto_labeled": sum(auto),
        "auto_labeled_total": sum(auto),
        "coverage": sum(auto) / 40,
        "coverage_total": sum(auto) / 60,
        "human_labels": 18,
        "training_labels": 6,
        "validation_labels": 12,
        "validation_labels_trained": 3,
        "validation_removed": 2,
        "queries": 0,
        "thresholds": [
            {
                "class": c,
                "index": i,
                "threshold": 0.5 + 0.1 * i,
                "estimated_error": 0.01 * i,
                "error_bound": None,
                "n_points": 3 + i,
                "auto_labeled": auto[i],
            }
            for i, c in enumerate("abc"[:k])
        ],
        "pooled_estimated_error": 0.02,
        "pooled_error_bound": 0.04,
        "epsilon": 0.05,
        "delta": 0.05,
        "bound": "valid",
        "guarantee": "pooled",
        "true_error": {
            "round": 0.25,
            "round_known": 4,
            "round_wrong": 1,
            "total": 0.25,
            "total_known": 4,
            "total_wrong": 1,
        },
        "reliability": (
            {
                "source": "D_th",
                "n": 9,
                "ece": 0.1,
                "edges": [0.0, 0.5, 1.0],
                "accuracy": [None, 0.75],
                "confidence": [None, 0.85],
                "counts": [0, 9],
            }
            if reliability
            else None
        ),
    }


def test_the_summary_equals_brute_force_counts(
    api: Api, make_project: Any, session_factory: sessionmaker[Session]
) -> None:
    project = make_project(settings=SMALL)
    pid = project["id"]
    X, y = blobs(60, seed=4)
    upload_npz(api, pid, X, y, id_prefix="x")
    assert api.post(f"{API}/projects/{pid}/simulate").status_code == 200  # draws 12 + 6, labels them

    # Corners written directly: rounds, auto-labels (on pool items, and one on a train item), a human
    # label on an auto-labeled pool item and one on a plain pool item, removed validation items, and an
    # open query.
    now = utcnow()
    with session_factory() as session:
        items = session.scalars(select(Item).where(Item.project_id == pid).order_by(Item.id)).all()
        pool = [i for i in items if i.role == "pool"]
        train = [i for i in items if i.role == "train"]
        validation = [i for i in items if i.role == "validation"]
        done = Round(
            project_id=pid,
            index=0,
            status="succeeded",
            stage="done",
            progress=1.0,
            n_queries=3,
            metrics=_metrics(3, [4, 3, 2], reliability=True),
            model_version="r0",
            created_at=now,
            started_at=now,
            finished_at=now,
        )
        session.add(done)
        session.flush()
        for n, item in enumerate(pool[:9]):
            session.add(
                AutoLabel(project_id=pid, item_id=item.id, round_id=done.id, label=n % 3, confidence=0.9)
            )
        session.add(AutoLabel(project_id=pid, item_id=train[0].id, round_id=done.id, label=1, confidence=0.8))
        session.add(HumanLabel(project_id=pid, item_id=pool[0].id, label=2, source="test"))  # P ∩ A ∩ H
        session.add(HumanLabel(project_id=pid, item_id=pool[20].id, label=0, source="test"))  # P ∩ H
        for item in validation[:2]:
            item.role = "removed"
        session.add(LabelQuery(project_id=pid, item_id=pool[30].id, purpose="training", round_id=done.id))
        session.add(
            Round(project_id=pid, index=1, status="running", stage="train", progress=0.37, started_at=now)
        )
        session.commit()

    response = api.get(f"{API}/projects/{pid}/summary")
    assert response.status_code == 200, response.text
    s = response.json()

    # Brute force over every row.
    with session_factory() as session:
        rows = session.execute(select(Item.id, Item.role).where(Item.project_id == pid)).all()
        role = dict(rows)
        auto = {
            a.item_id: a.label for a in session.scalars(select(AutoLabel).where(AutoLabel.project_id == pid))
        }
        human = {
            h.item_id: h.label
            for h in session.scalars(select(HumanLabel).where(HumanLabel.project_id == pid))
        }
        open_queries = Counter(
            q.purpose
            for q in session.scalars(
                select(LabelQuery).where(LabelQuery.project_id == pid, ~LabelQuery.answered)
            )
        )
        anti_join = items_repo.count_pool(session, pid)
    unlabeled = sum(1 for i, r in role.items() if r == "pool" and i not in auto and i not in human)
    c = s["counts"]
    assert c["items"] == len(role) == 60
    assert c["roles"] == {
        r: sum(1 for v in role.values() if v == r) for r in ("pool", "validation", "train", "removed")
    }
    # 42 pool items (60 − 12 validation − 6 seed), 9 auto-labeled, one more human-labeled
    assert c["unlabeled_pool"] == unlabeled == anti_join == 42 - 9 - 1
    assert c["auto_labels"] == len(auto) == 10
    assert c["coverage"] == pytest.approx(10 / 60)
    assert c["human_labels"] == len(human)
    assert c["validation_labels"] == sum(1 for i in human if role[i] == "validation") == 10
    assert c["validation_removed"] == 2
    assert c["training_labels"] == sum(1 for i in human if role[i] == "train") == 6
    assert c["budget_used"] == 6 and c["label_budget"] == 9
    # issue 15, item 12: queued queries are not labels, and queued items are still unlabeled
    assert c["budget_labeled"] == sum(1 for i in human if role[i] == "train") == 6
    assert c["budget_queued"] == open_queries["training"] == 1
    assert c["unlabeled"] == unlabeled + open_queries["validation"] + open_queries["training"] == 33
    assert (
        (c["open_validation"], c["open_training"])
        == (open_queries["validation"], open_queries["training"])
        == (0, 1)
    )

    for k, cls in enumerate(s["classes"]):
        assert cls["name"] == "abc"[k]
        assert cls["auto_labels"] == sum(1 for v in auto.values() if v == k)
        assert cls["coverage"] == pytest.approx(cls["auto_labels"] / 60)
        assert cls["validation_left"] == sum(
            1 for i, v in human.items() if v == k and role[i] == "validation"
        )
        assert cls["training_labels"] == sum(1 for i, v in human.items() if v == k and role[i] == "train")
        assert cls["threshold"] == pytest.approx(0.5 + 0.1 * k) and cls["n_points"] == 3 + k
        assert cls["auto_labeled_round"] == [4, 3, 2][k]
    assert s["classes_round_index"] == 0

    assert [(r["index"], r["status"]) for r in s["rounds"]] == [(0, "succeeded"), (1, "running")]
    first = s["rounds"][0]
    assert (first["estimated_error"], first["error_bound"], first["error_bound_kind"]) == (
        0.02,
        0.04,
        "pooled",
    )
    assert first["true_error"] == 0.25 and first["coverage"] == pytest.approx(9 / 40)
    assert (first["training_labels"], first["validation_labels_trained"]) == (6, 3)
    assert s["active_round"]["index"] == 1 and s["active_round"]["stage"] == "train"
    assert s["active_round"]["progress"] == pytest.approx(0.37)
    assert s["reliability"]["bins"] == [
        {"lo": 0.0, "hi": 0.5, "count": 0, "accuracy": None, "confidence": None},
        {"lo": 0.5, "hi": 1.0, "count": 9, "accuracy": 0.75, "confidence": 0.85},
    ]
    assert s["queue_head"] == [
        {"external_id": f"x{pool[30].id - items[0].id}", "purpose": "training", "round_id": done.id}
    ]
    assert s["rounds_total"] == 2 and s["project"]["epsilon"] == 0.05

    # A round that did not succeed cannot be picked; the projects overview agrees.
    missing = api.get(f"{API}/projects/{pid}/summary", params={"round_index": 1})
    assert missing.status_code == 404 and missing.json()["detail"]["field"] == "round_index"
    assert (
        api.get(f"{API}/projects/{pid}/summary", params={"round_index": 0}).json()["classes_round_index"] == 0
    )
    other = make_project()
    overview = api.get(f"{API}/dashboard/projects").json()
    by_id = {p["id"]: p for p in overview["items"]}
    assert set(by_id) == {pid, other["id"]} and overview["next_after_id"] is None
    assert (by_id[pid]["items"], by_id[pid]["auto_labels"], by_id[pid]["human_labels"]) == (
        60,
        10,
        len(human),
    )
    assert by_id[pid]["rounds"] == 2 and by_id[pid]["last_round"]["status"] == "running"
    assert (by_id[other["id"]]["items"], by_id[other["id"]]["last_round"]) == (0, None)
    assert api.get(f"{API}/dashboard/projects", params={"limit": 1}).json()["next_after_id"] == pid


def test_the_per_class_bound_is_the_largest_certified_one(
    api: Api, make_project: Any, session_factory: sessionmaker[Session]
) -> None:
    pid = make_project()["id"]
    metrics = _metrics(3, [1, 0, 2], reliability=False)
    metrics.update(pooled_estimated_error=None, pooled_error_bound=None)
    metrics["thresholds"][0].update(error_bound=0.03, n_points=10, estimated_error=0.0)
    metrics["thresholds"][1].update(threshold=None, error_bound=None)  # not auto-labeled
    metrics["thresholds"][2].update(error_bound=0.045, n_points=30, estimated_error=0.02)
    with session_factory() as session:
        session.add(Round(project_id=pid, index=0, status="succeeded", progress=1.0, metrics=metrics))
        session.commit()
    r = api.get(f"{API}/projects/{pid}/summary").json()["rounds"][0]
    assert r["error_bound"] == 0.045 and r["error_bound_kind"] == "max over classes"
    assert r["estimated_error"] == pytest.approx((0.0 * 10 + 0.02 * 30) / 40)


def test_a_round_records_the_reliability_of_its_confidence_function_on_d_th(
    api: Api, make_project: Any, session_factory: sessionmaker[Session]
) -> None:
    project = make_project(settings={**SMALL, "validation_size": 40, "seed_size": 20, "label_budget": 20})
    pid = project["id"]
    X, y = blobs(200, seed=2, spread=1.5)  # overlapping blobs: mistakes happen
    upload_npz(api, pid, X, y, id_prefix="x")
    assert api.post(f"{API}/projects/{pid}/simulate").status_code == 200
    started = api.post(f"{API}/projects/{pid}/rounds").json()
    done = api.wait_round(started["id"])
    assert done["status"] == "succeeded", done
    diagram = done["metrics"]["reliability"]

    # Rebuild D_th: the round's validation rows in id order (those still in the set, and those it removed),
    # split with the round's seed as the library does, scored by the saved model and confidence function.
    with session_factory() as session:
        proj = session.get(Project, pid)
        assert proj is not None
        rows = session.execute(
            select(Item.id, Item.data, HumanLabel.label)
            .join(HumanLabel, HumanLabel.item_id == Item.id)
            .where(Item.project_id == pid, Item.role.in_(("validation", "removed")))
            .order_by(Item.id)
        ).all()
        layout = layout_of(proj)
    raw = np.stack([np.frombuffer(r.data, dtype=np.uint8) for r in rows])
    X_val = model_inputs(layout, from_bytes(layout, raw), None)
    y_val = np.array([r.label for r in rows])
    # softmax (SMALL's confidence function) learns nothing from labels: D_th is every validation row
    assert SMALL.get("confidence", "softmax") == "softmax"
    th = np.arange(len(rows))
    artifacts = load_artifacts(api.settings.artifacts_dir / str(pid) / f"{done['model_version']}.pt")
    predicted, scores, _ = score_points(
        artifacts.model, artifacts.confidence, artifacts.thresholds, X_val[th]
    )
    correct = predicted == y_val[th]
    edges, accuracy, confidence, counts = reliability_diagram(scores, correct, 10)

    assert diagram["source"] == "D_th" and diagram["n"] == len(th) == 40
    assert diagram["counts"] == counts.tolist() and sum(diagram["counts"]) == 40
    assert diagram["edges"] == pytest.approx(edges.tolist())
    for got, want in zip(diagram["accuracy"] + diagram["confidence"], [*accuracy, *confidence], strict=True):
        assert (got is None and np.isnan(want)) or got == pytest.approx(want)
    assert diagram["ece"] == pytest.approx(expected_calibration_error(scores, correct, 10))
    shown = api.get(f"{API}/projects/{pid}/summary").json()["reliability"]
    assert [b["count"] for b in shown["bins"]] == diagram["counts"] and shown["round_index"] == 0


def test_the_summary_says_when_the_settings_cannot_certify_anything(api: Api) -> None:
    """Before any round: a project whose validation points cannot hold a certificate carries the warning
    the project's answer carries (the page shows it above the figures); one that can carries none."""
    body: dict[str, Any] = {"classes": ["a", "b"], "data_kind": "features", "input_shape": [2]}
    few = api.post(f"{API}/projects", json={**body, "name": "few", "settings": {"validation_size": 20}})
    enough = api.post(f"{API}/projects", json={**body, "name": "enough"})
    assert few.status_code == enough.status_code == 201, few.text + enough.text
    summary = api.get(f"{API}/projects/{few.json()['id']}/summary").json()
    assert summary["project"]["warnings"] == few.json()["certificate"]["warnings"]
    assert len(summary["project"]["warnings"]) == 1 and "at most 20" in summary["project"]["warnings"][0]
    assert api.get(f"{API}/projects/{enough.json()['id']}/summary").json()["project"]["warnings"] == []


def test_the_page_and_its_files(api: Api) -> None:
    page = api.client.get("/dashboard")  # no key: the page holds no data
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    html = page.text
    assert "<script>" not in html  # every script is a file (the CSP forbids inline ones)
    import re

    assets = re.findall(r'(?:src|href)="(/dashboard/static/[^"?]+)\?v=([0-9a-f]{12})"', html)
    assert {a for a, _ in assets} == {
        "/dashboard/static/dashboard.css",
        "/dashboard/static/charts.js",
        "/dashboard/static/dashboard.js",
    }
    for asset, _version in assets:
        response = api.client.get(asset)
        assert response.status_code == 200 and response.content
        assert response.headers["content-type"].startswith(
            "text/css" if asset.endswith(".css") else "text/javascript"
        )
    for bad in (
        "/dashboard/static/nothing.js",
        "/dashboard/static/..%2Fservice.py",
        "/dashboard/static/page.html",
    ):
        assert api.client.get(bad).status_code == 404, bad
    # The numbers need a key.
    assert api.client.get(f"{API}/dashboard/projects").status_code == 401
    assert api.client.get(f"{API}/projects/1/summary").status_code == 401
    assert api.get(f"{API}/projects/999/summary").status_code == 404


SCALE_ITEMS = int(os.environ.get("TBAL_DASHBOARD_SCALE_ITEMS", "200000"))


def _fill(session: Session, pid: int, n: int) -> None:
    """n items (500 validation, 300 train, the rest pool), auto-labels on half the pool (class = id mod
    3), human labels on the validation and train items, 100 open queries, one succeeded round."""
    postgres = session.get_bind().dialect.name == "postgresql"
    series = (
        f"SELECT g AS x FROM generate_series(1, {n}) AS g"
        if postgres
        else f"WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < {n}) SELECT x FROM s"
    )
    blob = "decode('00000000000000000000000000000000', 'hex')" if postgres else "zeroblob(16)"
    start = session.execute(text("SELECT coalesce(max(id), 0) FROM items")).scalar_one()
    now = {"now": utcnow()}
    session.execute(
        text(
            f"INSERT INTO items (id, project_id, external_id, data, role, created_at) "
            f"SELECT x + {start}, {pid}, 'i' || x, {blob}, CASE WHEN x <= 500 THEN 'validation' "
            f"WHEN x <= 800 THEN 'train' ELSE 'pool' END, CURRENT_TIMESTAMP FROM ({series}) AS q"
        )
    )
    round_ = Round(
        project_id=pid, index=0, status="succeeded", progress=1.0, metrics=_metrics(3, [1, 1, 1], True)
    )
    session.add(round_)
    session.flush()
    session.execute(
        text(
            "INSERT INTO human_labels (project_id, item_id, label, source, created_at, updated_at) "
            f"SELECT {pid}, id, id % 3, 'api', :now, :now FROM items "
            f"WHERE project_id = {pid} AND id <= {start + 800}"
        ),
        now,
    )
    half = 800 + (n - 800) // 2
    session.execute(
        text(
            "INSERT INTO auto_labels (project_id, item_id, round_id, label, confidence, created_at) "
            f"SELECT {pid}, id, {round_.id}, id % 3, 0.95, :now FROM items "
            f"WHERE project_id = {pid} AND id > {start + 800} AND id <= {start + half}"
        ),
        now,
    )
    session.execute(
        text(
            "INSERT INTO queries (project_id, item_id, purpose, answered, created_at) "
            f"SELECT {pid}, id, 'training', {'false' if postgres else '0'}, :now FROM items "
            f"WHERE project_id = {pid} AND id > {start + n - 100}"
        ),
        now,
    )
    if postgres:
        session.execute(
            text("SELECT setval(pg_get_serial_sequence('items', 'id'), (SELECT max(id) FROM items))")
        )
        session.commit()
        session.execute(text("ANALYZE"))
    else:
        session.commit()
        session.execute(text("ANALYZE"))
    session.commit()


@pytest.mark.slow
def test_the_summary_stays_small_and_fast_with_many_items(
    api: Api, make_project: Any, session_factory: sessionmaker[Session]
) -> None:
    n = SCALE_ITEMS
    pid = make_project()["id"]
    with session_factory() as session:
        started = time.perf_counter()
        _fill(session, pid, n)
        print(f"\n{n} items written in {time.perf_counter() - started:.1f} s")
    api.get(f"{API}/projects/{pid}/summary")  # warm the caches once
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        response = api.get(f"{API}/projects/{pid}/summary")
        timings.append(time.perf_counter() - started)
    body = response.json()
    started = time.perf_counter()
    overview = api.get(f"{API}/dashboard/projects")
    overview_s = time.perf_counter() - started
    best = min(timings)
    print(
        f"summary of {n} items: {1000 * best:.0f} ms (best of 3; {body['query_ms']:.0f} ms in the service), "
        f"{len(response.content)} bytes; projects overview {1000 * overview_s:.0f} ms"
    )
    half = 800 + (n - 800) // 2
    c = body["counts"]
    assert c["items"] == n and c["auto_labels"] == half - 800
    assert c["unlabeled_pool"] == n - half and c["open_training"] == 100
    assert [cls["auto_labels"] for cls in body["classes"]] == [
        sum(1 for i in range(801, half + 1) if i % 3 == k) for k in range(3)
    ]
    assert len(response.content) < 20_000  # nothing per item
    assert best < 1.0 * max(1.0, n / 200_000), f"summary took {best:.2f} s"
    assert overview.status_code == 200 and overview.json()["items"][0]["items"] == n
    json.dumps(body)
