"""The issue's "Bad input" list, case by case: each request gets a 4xx naming the field and the reason,
and no table changes (nothing of the request is half-written)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.app.conftest import TABLES, Api, blobs, count_rows

MakeProject = Callable[..., dict[str, Any]]


def _snapshot(factory: sessionmaker[Session]) -> dict[str, int]:
    return {table: count_rows(factory, table) for table in TABLES}


def _npz(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.fixture
def setup(api: Api, make_project: MakeProject) -> dict[str, Any]:
    """A feature project (d=4, classes a/b/c) with 40 items and its first queue, an image project (2×2)."""
    features = make_project(settings={"validation_size": 10, "seed_size": 5, "label_budget": 10})
    X, y = blobs(40)
    api.post(
        f"/api/v1/projects/{features['id']}/items/upload",
        content=_npz(X=X, y=y),
        headers={"Content-Type": "application/octet-stream"},
    )
    queue = api.get(f"/api/v1/projects/{features['id']}/queue", params={"limit": 100}).json()["items"]
    image = make_project(data_kind="image", input_shape=[2, 2])
    return {"pid": features["id"], "image_pid": image["id"], "queue": queue}


def _cases(s: dict[str, Any]) -> list[tuple[str, str, str, Any, int, str]]:
    """(name, method+url, kind of body, body, status, field)."""
    pid, img = s["pid"], s["image_pid"]
    item = s["queue"][0]["item_id"]
    ok = [1.0, 2.0, 3.0, 4.0]
    items = f"/api/v1/projects/{pid}/items"
    labels = f"/api/v1/projects/{pid}/labels"
    return [
        (
            "wrong feature dimension",
            items,
            "json",
            {"items": [{"external_id": "n1", "features": ok}, {"external_id": "n2", "features": [1.0, 2.0]}]},
            422,
            "items.1.features",
        ),
        (
            "wrong feature dimension (upload)",
            f"{items}/upload",
            "npz",
            _npz(X=np.zeros((3, 5), np.float32)),
            422,
            "file.X",
        ),
        (
            "wrong image shape",
            f"/api/v1/projects/{img}/items",
            "json",
            {"items": [{"external_id": "i", "image": [[1, 2, 3], [4, 5, 6]]}]},
            422,
            "items.0.image",
        ),
        (
            "NaN",
            items,
            "json",
            {"items": [{"external_id": "n", "features": [1.0, float("nan"), 0.0, 0.0]}]},
            422,
            "items.0.features",
        ),
        (
            "inf (upload)",
            f"{items}/upload",
            "npz",
            _npz(X=np.array([[1, 2, np.inf, 4]], np.float32)),
            422,
            "file.X",
        ),
        (
            "unknown class (ground truth)",
            items,
            "json",
            {"items": [{"external_id": "n", "features": ok, "ground_truth": "zebra"}]},
            422,
            "items.0.ground_truth",
        ),
        (
            "unknown class (label)",
            labels,
            "json",
            {"labels": [{"item_id": item, "label": "zebra"}]},
            422,
            "labels.0.label",
        ),
        (
            "distribution not summing to 1",
            labels,
            "json",
            {"labels": [{"item_id": item, "distribution": [0.6, 0.6, 0.0]}]},
            422,
            "labels.0.distribution",
        ),
        (
            "votes for a class that does not exist",
            labels,
            "json",
            {"labels": [{"item_id": item, "votes": {"ann1": "a", "ann2": "dog"}}]},
            422,
            "labels.0.votes.ann2",
        ),
        (
            "duplicate external ids in one batch",
            items,
            "json",
            {"items": [{"external_id": "dup", "features": ok}, {"external_id": "dup", "features": ok}]},
            422,
            "items.1.external_id",
        ),
        (
            "duplicate external ids in one upload",
            f"{items}/upload",
            "npz",
            _npz(X=np.zeros((2, 4), np.float32), external_ids=np.array(["x", "x"])),
            422,
            "file.external_ids",
        ),
        (
            "unknown project",
            "/api/v1/projects/987654/items",
            "json",
            {"items": [{"external_id": "n", "features": ok}]},
            404,
            "project_id",
        ),
        ("unknown project (round)", "/api/v1/projects/987654/rounds", "none", None, 404, "project_id"),
        (
            "round with too few validation labels",
            f"/api/v1/projects/{pid}/rounds",
            "none",
            None,
            409,
            "validation_labels",
        ),
    ]


@pytest.mark.parametrize("index", range(14))
def test_bad_input_is_4xx_with_field_and_reason_and_writes_nothing(
    api: Api, setup: dict[str, Any], session_factory: sessionmaker[Session], index: int
) -> None:
    name, url, kind, body, status, field = _cases(setup)[index]
    before = _snapshot(session_factory)
    if kind == "json":
        raw = json.dumps(body)  # NaN as the literal Python writes
        response = api.post(url, content=raw, headers={"Content-Type": "application/json"})
    elif kind == "npz":
        response = api.post(url, content=body, headers={"Content-Type": "application/octet-stream"})
    else:
        response = api.post(url)
    assert response.status_code == status, (name, response.text)
    detail = response.json()["detail"]
    assert detail["field"] == field, (name, detail)
    assert isinstance(detail["reason"], str) and len(detail["reason"]) > 5, (name, detail)
    assert _snapshot(session_factory) == before, name
