"""Item ingestion: JSON batches, binary uploads, idempotence, and every bad input refused whole."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import GroundTruth, Item
from app.projects.keys_service import create_key
from app.settings import Settings
from tests.app.conftest import Api, blobs, count_rows

MakeProject = Callable[..., dict[str, Any]]


def _npz(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _npy(X: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, X)
    return buffer.getvalue()


def test_json_ingest_is_idempotent_and_stores_float32_bytes(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    pid = make_project()["id"]
    items = [
        {"external_id": "a", "features": [1.0, 2.0, 3.0, 4.5], "ground_truth": "b"},
        {"external_id": "b", "features": [0, 0, 0, 1], "ground_truth": 2},
        {"external_id": "c", "features": [-1e3, 0.25, 7, 8]},
    ]
    first = api.post(f"/api/v1/projects/{pid}/items", json={"items": items})
    assert first.status_code == 200, first.text
    assert first.json() == {"received": 3, "inserted": 3, "skipped": 0, "ground_truth_added": 2}
    again = api.post(
        f"/api/v1/projects/{pid}/items", json={"items": [*items, {"external_id": "d", "features": [0] * 4}]}
    )
    assert again.json() == {"received": 4, "inserted": 1, "skipped": 3, "ground_truth_added": 0}
    with session_factory() as session:
        rows = {i.external_id: i for i in session.scalars(select(Item).order_by(Item.id))}
        truth = {g.item_id: g.label for g in session.scalars(select(GroundTruth))}
    assert list(rows) == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(np.frombuffer(rows["a"].data, dtype="<f4"), [1.0, 2.0, 3.0, 4.5])
    assert len(rows["c"].data) == 16
    assert truth == {rows["a"].id: 1, rows["b"].id: 2}
    listed = api.get(f"/api/v1/projects/{pid}/items", params={"limit": 2}).json()
    assert [i["external_id"] for i in listed["items"]] == ["a", "b"]
    assert listed["items"][0]["has_ground_truth"] is True
    rest = api.get(f"/api/v1/projects/{pid}/items", params={"after_id": listed["next_after_id"]}).json()
    assert [i["external_id"] for i in rest["items"]] == ["c", "d"] and rest["next_after_id"] is None


def test_image_ingest_json(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    pid = make_project(data_kind="image", input_shape=[2, 3])
    image = [[0, 255, 3], [4, 5, 6]]
    response = api.post(
        f"/api/v1/projects/{pid['id']}/items", json={"items": [{"external_id": "x", "image": image}]}
    )
    assert response.status_code == 200, response.text
    with session_factory() as session:
        data = session.scalars(select(Item.data)).one()
    assert data == bytes([0, 255, 3, 4, 5, 6])


def test_upload_npz_raw_body_with_ids_and_truth(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    pid = make_project()["id"]
    X, y = blobs(500)
    ids = np.array([f"item-{i}" for i in range(500)])
    body = _npz(X=X, external_ids=ids, y=y)
    url = f"/api/v1/projects/{pid}/items/upload"
    headers = {"Content-Type": "application/octet-stream"}
    response = api.post(url, content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 500, "inserted": 500, "skipped": 0, "ground_truth_added": 500}
    assert api.post(url, content=body, headers=headers).json()["inserted"] == 0
    with session_factory() as session:
        rows = session.execute(select(Item.external_id, Item.data).order_by(Item.id)).all()
    assert [r[0] for r in rows] == list(ids)
    stored = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(500, 4)
    np.testing.assert_array_equal(stored, X)


def test_upload_npy_multipart_and_compressed_npz(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    pid = make_project()["id"]
    X, y = blobs(30)
    url = f"/api/v1/projects/{pid}/items/upload"
    npy = api.post(url, params={"id_prefix": "row-"}, files={"file": ("x.npy", _npy(X.astype(np.float64)))})
    assert npy.status_code == 200, npy.text
    assert npy.json()["inserted"] == 30
    buffer = io.BytesIO()
    np.savez_compressed(buffer, X=X[:5], external_ids=np.array(["row-0", "z1", "z2", "z3", "z4"]), y=y[:5])
    packed = api.post(url, content=buffer.getvalue(), headers={"Content-Type": "application/octet-stream"})
    assert packed.status_code == 200, packed.text
    assert packed.json()["inserted"] == 4 and packed.json()["skipped"] == 1
    assert count_rows(session_factory, "items") == 34


def _bad_cases() -> list[tuple[str, dict[str, Any], str]]:
    ok = [0.0, 1.0, 2.0, 3.0]
    return [
        (
            "wrong dimension",
            {"items": [{"external_id": "a", "features": ok}, {"external_id": "b", "features": [1.0]}]},
            "items.1.features",
        ),
        (
            "NaN",
            {"items": [{"external_id": "a", "features": [0.0, float("nan"), 1.0, 2.0]}]},
            "items.0.features",
        ),
        (
            "inf",
            {"items": [{"external_id": "a", "features": [0.0, float("inf"), 1.0, 2.0]}]},
            "items.0.features",
        ),
        (
            "beyond float32",
            {"items": [{"external_id": "a", "features": [1e300, 0, 0, 0]}]},
            "items.0.features",
        ),
        (
            "unknown class",
            {"items": [{"external_id": "a", "features": ok, "ground_truth": "zebra"}]},
            "items.0.ground_truth",
        ),
        (
            "class index out of range",
            {"items": [{"external_id": "a", "features": ok, "ground_truth": 3}]},
            "items.0.ground_truth",
        ),
        (
            "duplicate external ids",
            {"items": [{"external_id": "a", "features": ok}, {"external_id": "a", "features": ok}]},
            "items.1.external_id",
        ),
        (
            "image for a feature project",
            {"items": [{"external_id": "a", "image": [[1]]}]},
            "items.0.features",
        ),
        ("no payload", {"items": [{"external_id": "a"}]}, "items.0"),
        ("empty batch", {"items": []}, "items"),
    ]


@pytest.mark.parametrize(("case", "body", "field"), _bad_cases(), ids=[c[0] for c in _bad_cases()])
def test_bad_json_items_write_nothing(
    api: Api,
    make_project: MakeProject,
    session_factory: sessionmaker[Session],
    case: str,
    body: dict[str, Any],
    field: str,
) -> None:
    pid = make_project()["id"]
    raw = json.dumps(body)  # NaN and Infinity as the JSON literals Python writes
    response = api.post(
        f"/api/v1/projects/{pid}/items", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, (case, response.text)
    detail = response.json()["detail"]
    assert detail["field"] == field, (case, detail)
    assert detail["reason"]
    assert count_rows(session_factory, "items") == 0
    assert count_rows(session_factory, "ground_truth") == 0


def test_nan_sent_as_json_literal_is_refused(api: Api, make_project: MakeProject) -> None:
    pid = make_project()["id"]
    raw = '{"items": [{"external_id": "a", "features": [NaN, 1, 2, 3]}]}'
    response = api.post(
        f"/api/v1/projects/{pid}/items", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"]["field"] == "items.0.features"


def test_bad_image_shape_and_pixels(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    pid = make_project(data_kind="image", input_shape=[2, 2])["id"]
    for image, reason in (
        ([[1, 2, 3], [4, 5, 6]], "shape"),
        ([[1, 2], [3, 256]], "0..255"),
        ([[1, 2], [3]], "shape"),
    ):
        response = api.post(
            f"/api/v1/projects/{pid}/items", json={"items": [{"external_id": "a", "image": image}]}
        )
        assert response.status_code == 422
        assert response.json()["detail"]["field"] == "items.0.image"
        assert reason in response.json()["detail"]["reason"]
    assert count_rows(session_factory, "items") == 0


def test_bad_uploads_write_nothing(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    pid = make_project()["id"]
    url = f"/api/v1/projects/{pid}/items/upload"
    X, y = blobs(10)
    bad_x = X.copy()
    bad_x[7, 2] = np.inf
    cases = [
        (_npz(X=X[:, :3]), "file.X", "shape"),
        (_npz(X=bad_x), "file.X", "row 7"),
        (_npz(X=X, external_ids=np.array(["a"] * 10)), "file.external_ids", "duplicate"),
        (_npz(X=X, y=np.full(10, 5)), "file.y", "unknown class"),
        (_npz(X=X, y=y[:4]), "file.y", "shape"),
        (_npz(Y=X), "file.Y", "unexpected"),
        (_npz(external_ids=np.array(["a"])), "file.X", "no array named X"),
        (b"hello world", "file", ".npy or .npz"),
        (b"", "body", "empty"),
    ]
    for body, field, reason in cases:
        response = api.post(url, content=body, headers={"Content-Type": "application/octet-stream"})
        assert response.status_code == 422, (field, response.text)
        assert response.json()["detail"]["field"] == field
        assert reason in response.json()["detail"]["reason"], response.json()
    assert count_rows(session_factory, "items") == 0


def test_unknown_project_is_404(api: Api) -> None:
    response = api.post(
        "/api/v1/projects/999/items", json={"items": [{"external_id": "a", "features": [1, 2, 3, 4]}]}
    )
    assert response.status_code == 404
    assert response.json()["detail"]["field"] == "project_id"


def test_oversized_bodies_get_413(settings: Settings, session_factory: sessionmaker[Session]) -> None:
    from fastapi.testclient import TestClient

    from app.main import create_app

    small = settings.model_copy(update={"max_request_bytes": 2048, "max_json_bytes": 1024})
    _key, secret = create_key(session_factory, "t")
    headers = {"Authorization": f"Bearer {secret}"}
    with TestClient(create_app(small)) as client:
        project = {"name": "p", "classes": ["a", "b"], "data_kind": "features", "input_shape": [4]}
        pid = client.post("/api/v1/projects", json=project, headers=headers).json()["id"]
        big_json = {"items": [{"external_id": str(i), "features": [1.0, 2.0, 3.0, 4.0]} for i in range(100)]}
        response = client.post(f"/api/v1/projects/{pid}/items", json=big_json, headers=headers)
        assert response.status_code == 413
        assert response.json()["detail"]["field"] == "body"

        def chunks() -> Any:  # no Content-Length: the limit applies while streaming
            for _ in range(10):
                yield b"\x00" * 1000

        streamed = client.post(
            f"/api/v1/projects/{pid}/items/upload",
            content=chunks(),
            headers={**headers, "Content-Type": "application/octet-stream"},
        )
        assert streamed.status_code == 413
    assert count_rows(session_factory, "items") == 0


def test_hostile_values_are_4xx_not_500(api: Api, make_project: MakeProject) -> None:
    pid = make_project()["id"]
    for url in (
        f"/api/v1/projects/{2**70}",
        "/api/v1/projects/0",
        f"/api/v1/rounds/{2**64}",
        "/api/v1/projects/x",
    ):
        assert api.get(url).status_code == 422, url
    nul = api.post(
        f"/api/v1/projects/{pid}/items", json={"items": [{"external_id": "a\x00b", "features": [1] * 4}]}
    )
    assert nul.status_code == 422 and nul.json()["detail"]["field"] == "items.0.external_id"
    big = api.post(f"/api/v1/projects/{pid}/labels", json={"labels": [{"item_id": 2**70, "label": 0}]})
    assert big.status_code == 422 and big.json()["detail"]["field"] == "labels.0.item_id"
    huge = {
        "name": "h",
        "classes": ["a", "b"],
        "data_kind": "features",
        "input_shape": [3],
        "settings": {"epochs": 10**30},
    }
    assert api.post("/api/v1/projects", json=huge).json()["detail"]["field"] == "settings.epochs"
    shape = {"name": "h", "classes": ["a", "b"], "data_kind": "image", "input_shape": [10_000, 10_000]}
    assert api.post("/api/v1/projects", json=shape).json()["detail"]["field"] == "input_shape"
    page = api.get(f"/api/v1/projects/{pid}/items", params={"limit": 0})
    assert page.status_code == 422 and page.json()["detail"]["field"] == "limit"
