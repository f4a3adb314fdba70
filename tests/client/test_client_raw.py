"""The client with raw data: texts from a list and from CSV / JSONL files, images from a folder with globs
(``tbal items upload --images DIR --glob ...``), against the service in process (SQLite)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import create_engine, text

import tbal_client.cli as cli
from app.settings import Settings
from tbal.encoders import make_text_encoder
from tbal_client import APIError, TBALClient, TextFileError, find_images
from tests.client.conftest import project_counts


def _text_project(tb: TBALClient, name: str = "texts") -> int:
    project = tb.create_project(
        name, classes=["neg", "pos"], data_kind="text", settings={"encoder": "hashing:32"}
    )
    assert project.input_shape == [32]
    return project.id


def test_texts_from_a_list_in_chunks(tb: TBALClient) -> None:
    pid = _text_project(tb)
    texts = [f"sentence number {i} is {'good' if i % 2 else 'bad'}" for i in range(25)]
    chunks: list[tuple[int, int]] = []
    done = tb.upload_texts(
        pid, texts, ground_truth=["pos" if i % 2 else "neg" for i in range(25)], id_prefix="t", chunk_rows=10,
        on_chunk=lambda a, b: chunks.append((a, b)),
    )  # fmt: skip
    assert (done.received, done.inserted, done.ground_truth_added) == (25, 25, 25)
    assert chunks == [(10, 25), (20, 25), (25, 25)]
    assert tb.upload_texts(pid, texts[:5], id_prefix="t").skipped == 5
    ids = [i["external_id"] for i in tb.iter_items(pid)]
    assert ids == [f"t{i}" for i in range(25)]
    listed = tb._json("GET", f"/api/v1/projects/{pid}/items/texts", params={"limit": 3})["items"]
    assert [r["text"] for r in listed] == texts[:3]


def test_text_files_and_their_errors(tb: TBALClient, tmp_path: Path) -> None:
    pid = _text_project(tb)
    csv_file = tmp_path / "reviews.csv"
    csv_file.write_text('review,stars\n"fine, really",pos\nawful,neg\n', encoding="utf-8")
    done = tb.upload_text_file(pid, csv_file, text_column="review", label_column="stars", id_prefix="r")
    assert done.inserted == 2 and done.ground_truth_added == 2
    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text("\n".join(json.dumps({"key": f"k{i}", "text": f"text {i}"}) for i in range(3)))
    assert tb.upload_text_file(pid, jsonl, id_column="key").inserted == 3
    with pytest.raises(TextFileError, match="no column 'body'"):
        tb.upload_text_file(pid, csv_file, text_column="body")
    with pytest.raises(APIError) as caught:
        tb.upload_texts(pid, ["ok"], ground_truth=["meh"])
    assert caught.value.status == 422 and caught.value.field == "texts.0.ground_truth"


def _write_images(root: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    written = {}
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            arr = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / cls / f"{i}.png")
            written[f"{cls}/{i}.png"] = arr
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / ".hidden.png").write_bytes(b"skipped")
    return written


def test_images_from_a_folder_with_globs(
    tb: TBALClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, service_settings: Settings
) -> None:
    written = _write_images(tmp_path / "imgs")
    found = find_images(tmp_path / "imgs")
    assert [p.relative_to(tmp_path / "imgs").as_posix() for p in found] == sorted(written)
    assert len(find_images(tmp_path / "imgs", ["dog/*.png"])) == 3
    project = tb.create_project("pics", classes=["cat", "dog"], data_kind="image", input_shape=[8, 8, 3])
    monkeypatch.setattr(cli, "_client", lambda args: tb)
    argv = ["items", "upload", "--project", str(project.id), "--images", str(tmp_path / "imgs")]
    assert cli.main([*argv, "--glob", "cat/*.png", "--labels-from-folders"]) == cli.EXIT_OK
    assert project_counts(tb, project.id).items == 3
    assert cli.main([*argv, "--labels-from-folders"]) == cli.EXIT_OK
    items = list(tb.iter_items(project.id))
    assert sorted(i["external_id"] for i in items) == sorted(written)
    assert all(i["has_ground_truth"] for i in items)
    engine = create_engine(service_settings.database_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT external_id, data FROM items")).all()
    engine.dispose()
    for ext, data in rows:
        np.testing.assert_array_equal(np.frombuffer(data, np.uint8).reshape(8, 8, 3), written[ext])
    missing = ["items", "upload", "--project", str(project.id), "--images", str(tmp_path / "nothing")]
    assert cli.main(missing) == cli.EXIT_BAD_INPUT


def test_a_text_file_from_the_command(
    tb: TBALClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pid = _text_project(tb)
    monkeypatch.setattr(cli, "_client", lambda args: tb)
    data = tmp_path / "s.csv"
    data.write_text("sentence,label\nhello there,pos\nbye now,neg\n", encoding="utf-8")
    argv = ["items", "upload", "--project", str(pid), "--data", str(data), "--text-column", "sentence"]
    assert cli.main([*argv, "--label-column", "label"]) == cli.EXIT_OK
    assert capsys.readouterr().out.strip() == "2"
    enc = make_text_encoder("hashing:32")
    assert enc.encode(["hello there"]).shape == (1, 32)
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"sentence\n\xff\xfe\n")
    assert (
        cli.main(["items", "upload", "--project", str(pid), "--data", str(bad), "--text-column", "sentence"])
        == 2
    )
    assert "not UTF-8" in capsys.readouterr().err


def test_predictions_for_raw_texts(tb: TBALClient) -> None:
    settings = {"encoder": "hashing:32", "validation_size": 20, "seed_size": 10, "label_budget": 14,
                "batch_size": 4, "model": "mlp", "hidden": [8], "epochs": 3, "max_rounds": 1}  # fmt: skip
    pid = tb.create_project("predicted", classes=["neg", "pos"], data_kind="text", settings=settings).id
    texts = [f"{'great lovely' if i % 2 else 'dull boring'} film {i}" for i in range(60)]
    tb.upload_texts(pid, texts, ground_truth=["pos" if i % 2 else "neg" for i in range(60)])
    tb.simulate(pid)
    tb.run_round(pid, poll_s=0.05)
    new = ["great lovely film", "dull boring film", "a film"]
    by_text = tb.predict_texts(pid, new, batch_size=2)
    by_features = tb.predict(pid, make_text_encoder("hashing:32").encode(new))
    assert by_text.model_version == by_features.model_version and len(by_text.predictions) == 3
    for a, b in zip(by_text.predictions, by_features.predictions, strict=True):  # two requests vs one:
        assert (a.label, a.clears_threshold) == (
            b.label,
            b.clears_threshold,
        )  # batch order moves the last bits
        assert a.confidence == pytest.approx(b.confidence, abs=1e-6)
