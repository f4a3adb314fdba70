"""Image projects from files over HTTP: CIFAR-10 images written as PNG files and uploaded (multipart, zip,
tar.gz) give the same arrays as the .npz; folders name classes; resizing; bad files and archives are a
422 naming the file, with nothing written."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app.errors import Invalid
from tests.app.conftest import Api, count_rows

MakeProject = Callable[..., dict[str, Any]]
N_IMAGES = 40
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(scope="module")
def cifar(shared_data: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(shared_data / "cifar10_test_cifar10h.npz") as z:
        return z["X"][:N_IMAGES], z["y"][:N_IMAGES]


def _png(arr: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def _stored(factory: sessionmaker[Session], pid: int, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    with factory() as session:
        rows = session.execute(
            text("SELECT external_id, data FROM items WHERE project_id = :p"), {"p": pid}
        ).all()
    return {r[0]: np.frombuffer(bytes(r[1]), dtype=np.uint8).reshape(shape) for r in rows}


def _truth(factory: sessionmaker[Session], pid: int) -> dict[str, int]:
    with factory() as session:
        rows = session.execute(
            text(
                "SELECT i.external_id, g.label FROM items i JOIN ground_truth g ON g.item_id = i.id "
                "WHERE i.project_id = :p"
            ),
            {"p": pid},
        ).all()
    return {r[0]: int(r[1]) for r in rows}


def _project(make_project: MakeProject, shape: list[int] | None = None) -> int:
    body = make_project(classes=CLASSES, data_kind="image", input_shape=shape or [32, 32, 3])
    return int(body["id"])


def test_cifar_pngs_uploaded_as_files_give_the_npz_arrays(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session], cifar: Any
) -> None:
    X, _y = cifar
    pid = _project(make_project)
    files = [("files", (f"img{i:03d}.png", _png(x), "image/png")) for i, x in enumerate(X)]
    done = api.post(f"/api/v1/projects/{pid}/items/images", params={"id_prefix": "c/"}, files=files)
    assert done.status_code == 200, done.text
    assert done.json() == {"received": N_IMAGES, "inserted": N_IMAGES, "skipped": 0, "ground_truth_added": 0}
    stored = _stored(session_factory, pid, (32, 32, 3))
    for i, x in enumerate(X):
        np.testing.assert_array_equal(stored[f"c/img{i:03d}.png"], x)
    again = api.post(f"/api/v1/projects/{pid}/items/images", params={"id_prefix": "c/"}, files=files[:5])
    assert again.json()["skipped"] == 5 and again.json()["inserted"] == 0


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_archives_with_class_folders(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session], cifar: Any, kind: str
) -> None:
    X, y = cifar
    pid = _project(make_project)
    names = {f"train/{CLASSES[int(c)]}/{i}.png": x for i, (x, c) in enumerate(zip(X, y, strict=True))}
    buf = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, x in names.items():
                archive.writestr(name, _png(x))
            archive.writestr("__MACOSX/._junk", b"skipped")
            archive.writestr("train/.DS_Store", b"skipped")
    else:
        with tarfile.open(fileobj=buf, mode="w:gz") as archive:
            for name, x in names.items():
                data = _png(x)
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    done = api.post(
        f"/api/v1/projects/{pid}/items/images",
        params={"labels_from_folders": "true"},
        content=buf.getvalue(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert done.status_code == 200, done.text
    assert done.json()["inserted"] == N_IMAGES and done.json()["ground_truth_added"] == N_IMAGES
    stored = _stored(session_factory, pid, (32, 32, 3))
    truth = _truth(session_factory, pid)
    for i, (name, x) in enumerate(names.items()):
        np.testing.assert_array_equal(stored[name], x)
        assert truth[name] == int(y[i])


def test_images_are_converted_and_resized(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session], cifar: Any
) -> None:
    X, _y = cifar
    pid = _project(make_project, [16, 16])
    big = np.asarray(Image.fromarray(X[0]).resize((64, 48)))
    files = [
        ("files", ("a.jpg", _png(big, "JPEG"), "image/jpeg")),
        ("files", ("b.bmp", _png(X[1], "BMP"), "image/bmp")),
    ]
    done = api.post(f"/api/v1/projects/{pid}/items/images", files=files)
    assert done.status_code == 200, done.text
    stored = _stored(session_factory, pid, (16, 16))
    expected = np.asarray(Image.fromarray(X[1]).convert("L").resize((16, 16), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(stored["b.bmp"], expected)
    assert stored["a.jpg"].shape == (16, 16)


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


GOOD = _png(np.zeros((32, 32, 3), np.uint8))


@pytest.mark.parametrize(
    ("files", "field", "says"),
    [
        ({"ok.png": GOOD, "cut.png": GOOD[: len(GOOD) // 2]}, "files.cut.png", "truncated or corrupt"),
        ({"ok.png": GOOD, "notes.png": b"plain text"}, "files.notes.png", "not a PNG, JPEG, WEBP, BMP image"),
        ({"a.zip": _zip({"ok.png": GOOD, "../evil.png": GOOD})}, "files.a.zip", "outside the archive"),
        (
            {"a.zip": _zip({"ok.png": GOOD, "readme.txt": b"hi"})},
            "files.a.zip.readme.txt",
            "not an image file",
        ),
        ({"a.zip": b"PK\x03\x04 broken"}, "files.a.zip", "not a readable zip"),
        ({"x.png": GOOD, "y/x.png": GOOD}, None, None),  # control: distinct names
    ],
)
def test_bad_image_files_are_422_and_write_nothing(
    api: Api,
    make_project: MakeProject,
    session_factory: sessionmaker[Session],
    files: dict[str, bytes],
    field: str | None,
    says: str | None,
) -> None:
    pid = _project(make_project)
    parts = [("files", (name, data, "application/octet-stream")) for name, data in files.items()]
    response = api.post(f"/api/v1/projects/{pid}/items/images", files=parts)
    if field is None:
        assert response.status_code == 200, response.text
        return
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail["field"] == field and says in detail["reason"], detail
    assert count_rows(session_factory, "items") == 0


def test_a_zip_bomb_and_wrong_project_kind(
    api: Api, make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.items.raw import archives

    pid = _project(make_project)
    monkeypatch.setattr(archives, "MAX_ARCHIVE_BYTES", 10_000)
    bomb = _zip({f"{i}.png": GOOD for i in range(3)} | {"zeros.png": b"\x00" * 50_000})
    response = api.post(
        f"/api/v1/projects/{pid}/items/images", content=bomb, headers={"Content-Type": "application/zip"}
    )
    assert response.status_code == 422 and "expands to" in response.json()["detail"]["reason"]
    feature_project = make_project()["id"]
    response = api.post(
        f"/api/v1/projects/{feature_project}/items/images", files=[("files", ("a.png", GOOD))]
    )
    assert response.status_code == 422 and response.json()["detail"]["field"] == "data_kind"


@pytest.fixture
def image_server(tmp_path: Path) -> Any:
    """A local HTTP server of tmp_path/www (a loopback address: private to the URL check)."""
    import functools
    import http.server
    import threading

    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_images_by_url(
    api: Api,
    make_project: MakeProject,
    session_factory: sessionmaker[Session],
    cifar: Any,
    image_server: Any,
) -> None:
    X, y = cifar
    root, base = image_server
    for i in range(3):
        (root / f"{i}.png").write_bytes(_png(X[i]))
    pid = _project(make_project)
    items = [{"url": f"{base}/{i}.png", "external_id": f"u{i}", "ground_truth": int(y[i])} for i in range(3)]
    refused = api.post(f"/api/v1/projects/{pid}/items/images/urls", json={"items": items})
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"]["field"] == "urls.0"
    assert "non-public address (127.0.0.1)" in refused.json()["detail"]["reason"]
    api.settings.allow_private_urls = True  # the operator's switch (the app holds this Settings object)
    missing = api.post(
        f"/api/v1/projects/{pid}/items/images/urls", json={"items": [*items, {"url": f"{base}/nope.png"}]}
    )
    assert missing.status_code == 422 and "HTTP 404" in missing.json()["detail"]["reason"]
    assert count_rows(session_factory, "items") == 0
    done = api.post(f"/api/v1/projects/{pid}/items/images/urls", json={"items": items})
    assert done.status_code == 200, done.text
    assert done.json()["inserted"] == 3 and done.json()["ground_truth_added"] == 3
    stored = _stored(session_factory, pid, (32, 32, 3))
    for i in range(3):
        np.testing.assert_array_equal(stored[f"u{i}"], X[i])
    assert _truth(session_factory, pid) == {f"u{i}": int(y[i]) for i in range(3)}
    bad = api.post(
        f"/api/v1/projects/{pid}/items/images/urls", json={"items": [{"url": "ftp://x.org/a.png"}]}
    )
    assert bad.status_code == 422


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data", "http://10.0.0.7/a.png", "http://[::1]:8000/a.png",
            "http://0.0.0.0/a.png", "http://224.0.0.1/a.png", "file:///etc/passwd", "http://host:99999/a"],
)  # fmt: skip
def test_urls_to_non_public_addresses_are_refused(url: str) -> None:
    from app.errors import Invalid
    from app.items.fetch import check_public_url

    with pytest.raises(Invalid) as caught:
        check_public_url(url, "urls.0", allow_private=False)
    assert caught.value.field == "urls.0"
    check_public_url("http://8.8.8.8/a.png", "urls.0", allow_private=False)  # a public literal passes


def test_a_tar_with_a_link_is_refused(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    pid = _project(make_project)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:
        info = tarfile.TarInfo("ok.png")
        info.size = len(GOOD)
        archive.addfile(info, io.BytesIO(GOOD))
        link = tarfile.TarInfo("passwd.png")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        archive.addfile(link)
    response = api.post(
        f"/api/v1/projects/{pid}/items/images",
        content=buf.getvalue(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 422 and response.json()["detail"]["field"] == "body.passwd.png"
    assert "links" in response.json()["detail"]["reason"]
    assert count_rows(session_factory, "items") == 0


def test_a_feature_project_of_a_frozen_backbone(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session], cifar: Any, tmp_path: Path
) -> None:
    import torch
    from torch import nn

    from tbal.encoders import EncoderConfig
    from tbal.encoders.backbone import ImageBackboneEncoder
    from tbal.encoders.images import decode_images

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()
    ).eval()
    program = torch.export.export(
        net, (torch.zeros(2, 3, 16, 16),), dynamic_shapes=({0: torch.export.Dim("n")},)
    )
    models = tmp_path / "models"
    models.mkdir()
    torch.export.save(program, str(models / "bb.pt2"))
    settings = {"encoder": f"image-backbone:{models / 'bb.pt2'}", "image_shape": [16, 16, 3]}
    body: dict[str, Any] = {"name": "bb", "classes": CLASSES, "data_kind": "features", "settings": settings}
    refused = api.post("/api/v1/projects", json=body)
    assert refused.status_code == 422 and "TBAL_ENCODER_MODEL_DIRS" in refused.json()["detail"]["reason"]
    api.settings.encoder_model_dirs = [models]
    no_shape = api.post("/api/v1/projects", json={**body, "settings": {"encoder": settings["encoder"]}})
    assert no_shape.status_code == 422 and no_shape.json()["detail"]["field"] == "settings.image_shape"
    pixels = api.post("/api/v1/projects", json={**body, "data_kind": "image", "input_shape": [16, 16, 3]})
    assert pixels.status_code == 422 and pixels.json()["detail"]["field"] == "settings.encoder"
    created = api.post("/api/v1/projects", json=body)
    assert created.status_code == 201, created.text
    project = created.json()
    assert project["input_shape"] == [32]

    X, _y = cifar
    files = [("files", (f"{i}.png", _png(X[i]), "image/png")) for i in range(6)]
    done = api.post(f"/api/v1/projects/{project['id']}/items/images", files=files)
    assert done.status_code == 200, done.text
    with session_factory() as session:
        rows = session.execute(
            text("SELECT external_id, data FROM items WHERE project_id = :p ORDER BY external_id"),
            {"p": project["id"]},
        ).all()
    stored = np.stack([np.frombuffer(bytes(r[1]), dtype="<f4") for r in rows])
    encoder = ImageBackboneEncoder(EncoderConfig("image-backbone", path=str(models / "bb.pt2")), (16, 16, 3))
    expected = encoder.encode(decode_images([_png(X[i]) for i in range(6)], (16, 16, 3)))
    np.testing.assert_allclose(stored, expected, rtol=0, atol=1e-6)
    texts = api.post(
        f"/api/v1/projects/{project['id']}/items/texts", json={"items": [{"external_id": "t", "text": "x"}]}
    )
    assert texts.status_code == 422 and texts.json()["detail"]["field"] == "data_kind"

    # a round on the backbone's features, then new image files scored by it
    fast = {"validation_size": 14, "seed_size": 6, "label_budget": 8, "batch_size": 2, "model": "mlp",
            "hidden": [8], "epochs": 3, "bound": "paper", "max_rounds": 1}  # fmt: skip
    assert api.patch(f"/api/v1/projects/{project['id']}", json={"settings": fast}).status_code == 200
    more = [("files", (f"m{i}.png", _png(X[i]), "image/png")) for i in range(6, N_IMAGES)]
    labels = {f"m{i}.png": int(_y[i]) for i in range(6, N_IMAGES)}
    assert api.post(f"/api/v1/projects/{project['id']}/items/images", files=more).status_code == 200
    for query in api.get(f"/api/v1/projects/{project['id']}/queue", params={"limit": 100}).json()["items"]:
        ext = query["external_id"]
        label = labels.get(ext, 0)
        body = {"labels": [{"external_id": ext, "label": label}]}
        assert api.post(f"/api/v1/projects/{project['id']}/labels", json=body).status_code == 200
    done = api.run_round(project["id"])
    assert done["metrics"]["encoder"] == settings["encoder"]
    new = [("files", (f"n{i}.png", _png(X[i]), "image/png")) for i in (0, 1)]
    by_files = api.post(f"/api/v1/projects/{project['id']}/predict/images", files=new)
    assert by_files.status_code == 200, by_files.text
    by_features = api.post(
        f"/api/v1/projects/{project['id']}/predict",
        json={"items": [{"features": f} for f in expected[:2].tolist()]},
    )
    assert by_files.json() == by_features.json()


def test_predict_payloads_of_image_files_for_an_image_project(cifar: Any) -> None:
    from app.db.models import Project
    from app.errors import Invalid
    from app.items.raw import ImageFile, predict_items_of_images

    X, _y = cifar
    project = Project(name="p", classes=CLASSES, data_kind="image", input_shape=[32, 32, 3], settings={})
    items = predict_items_of_images(project, [ImageFile("a.png", _png(X[0])), ImageFile("b.png", _png(X[1]))])
    np.testing.assert_array_equal(np.array(items[1]["image"], dtype=np.uint8), X[1])
    with pytest.raises(Invalid) as caught:
        predict_items_of_images(project, [ImageFile("bad.png", b"nope")])
    assert caught.value.field == "files.bad.png"


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_zip_members_read_as_zipfile_reads_them(compression: int, tmp_path: Path) -> None:
    """Stored members are read straight from the archive (deflated ones through zipfile): the same bytes
    and names (empty and ``.`` parts dropped, hidden files skipped), from memory or a file, and a member
    whose bytes were damaged after the archive was written is refused by its name."""
    from app.items.raw.archives import archive_images

    members = {"a/1.png": GOOD, "b//./2.JPG": b"\xff\xd8 not checked here", "a/.hidden.png": b"x"}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        archive.writestr(zipfile.ZipInfo("c/3.png"), GOOD[:-1] + b"\x00")  # stored, CRC of these bytes
    data = buf.getvalue()
    (tmp_path / "x.zip").write_bytes(data)
    expected = [("a/1.png", GOOD), ("b/2.JPG", members["b//./2.JPG"]), ("c/3.png", GOOD[:-1] + b"\x00")]
    for source in (data, tmp_path / "x.zip"):
        assert [(f.name, f.data) for f in archive_images(source)] == expected
    at = data.index(GOOD[:-1] + b"\x00")  # the last member's bytes: flip one
    damaged = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
    with pytest.raises(Invalid) as refused:
        archive_images(damaged, "body")
    assert refused.value.field == "body.c/3.png" and "CRC" in refused.value.reason
