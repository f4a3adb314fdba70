"""``make demo DATA=...`` with raw data (issue 13 item 7): a CSV / JSONL file of labeled texts (columns
given or detected) and a folder of images with one sub-folder per class; the loaders' refusals; and the
demo end to end on SST-2 sentences (hashing encoder) and on CIFAR-10 PNG files in class folders."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from examples.demo import DemoError, build_parser, load_data, project_settings
from examples.raw_data import RawDataError, load_images, load_texts
from tests.e2e.conftest import ROOT, service_env


def _csv(path: Path, header: list[str], rows: Sequence[Sequence[object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _png(path: Path, x: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(x).save(path)


def test_text_columns_are_detected_or_given(tmp_path: Path) -> None:
    rows = [[i, f"a review number {i} that is long", "pos" if i % 2 else "neg"] for i in range(6)]
    found = load_texts(_csv(tmp_path / "r.csv", ["id", "review", "sentiment"], rows))
    assert (found.text_column, found.label_column, found.classes) == ("review", "sentiment", ["neg", "pos"])
    assert found.texts[1] == "a review number 1 that is long" and found.labels[:2] == ["neg", "pos"]
    odd = _csv(tmp_path / "o.csv", ["k", "words", "kind"], [[1, "some words here", 10], [2, "more words", 2]])
    by_length = load_texts(odd, label_column="kind")
    assert by_length.text_column == "words" and by_length.classes == ["2", "10"]  # numeric order
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": f"t{i}", "label": i % 3}) for i in range(6)))
    assert load_texts(jsonl).classes == ["0", "1", "2"]
    with pytest.raises(RawDataError, match="no label column"):
        load_texts(_csv(tmp_path / "n.csv", ["text", "other"], [["a", "b"]]))
    with pytest.raises(RawDataError, match="row 1 has no label"):
        load_texts(_csv(tmp_path / "m.csv", ["text", "label"], [["a", "x"], ["b", ""], ["c", "y"]]))
    with pytest.raises(RawDataError, match="at least 2"):
        load_texts(_csv(tmp_path / "s.csv", ["text", "label"], [["a", "x"], ["b", "x"]]))


def test_an_image_folder_gives_classes_ids_and_a_shape(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        for i in range(3):
            _png(tmp_path / "pets" / cls / f"{i}.png", rng.integers(0, 256, (100, 80, 3), dtype=np.uint8))
    (tmp_path / "pets" / "notes.txt").write_text("not an image")
    _png(tmp_path / "pets" / "loose.png", np.zeros((4, 4, 3), dtype=np.uint8))  # in no class folder
    images = load_images(tmp_path / "pets")
    assert images.classes == ["cat", "dog"] and images.external_ids[:2] == ["cat/0.png", "cat/1.png"]
    assert images.labels == ["cat"] * 3 + ["dog"] * 3
    assert images.input_shape == [64, 51, 3]  # at most 64 a side, the aspect kept
    assert load_images(tmp_path / "pets", image_size=32).input_shape == [32, 32, 3]
    _png(tmp_path / "grey" / "a" / "0.png", np.zeros((8, 8), dtype=np.uint8))
    _png(tmp_path / "grey" / "b" / "0.png", np.zeros((8, 8), dtype=np.uint8))
    assert load_images(tmp_path / "grey").input_shape == [8, 8]
    with pytest.raises(RawDataError, match="class sub-folders"):
        load_images(tmp_path / "grey" / "a")


def test_the_demo_takes_raw_data_and_its_settings(tmp_path: Path) -> None:
    path = _csv(tmp_path / "r.csv", ["text", "label"], [["good", "pos"], ["bad", "neg"]])
    args = build_parser().parse_args(["--data", str(path), "--encoder", "hashing:32"])
    data = load_data(path, args)
    assert data.data_kind == "text" and data.texts == ["good", "bad"] and data.input_shape == []
    assert data.classes == ["neg", "pos"] and data.y.tolist() == [1, 0]
    assert project_settings(args)["encoder"] == "hashing:32"
    folder = tmp_path / "pets"
    folder.mkdir()
    assert project_settings(build_parser().parse_args(["--data", str(folder)]))["model"] == "cnn"
    with pytest.raises(DemoError, match="no label column"):
        bad = _csv(tmp_path / "b.csv", ["text"], [["x"]])
        load_data(bad, build_parser().parse_args(["--data", str(bad)]))


def _demo(tmp_path: Path, name: str, *extra: str) -> dict[str, Any]:
    """The demo's JSON report of a run (project, rounds, evaluation) as it wrote it."""
    out = tmp_path / f"{name}.json"
    command = [sys.executable, "-m", "examples.demo", "--quick", "--port", "0"]
    done = subprocess.run(
        [*command, "--workdir", str(tmp_path / name), "--json", str(out), *extra],
        cwd=ROOT,
        env=service_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, (
        f"demo failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return dict(json.loads(out.read_text()))


SMALL = [
    "--set",
    "validation_size=200",
    "--set",
    "seed_size=50",
    "--set",
    "label_budget=100",
    "--set",
    "batch_size=50",
]
"""Small sets, so that each run fits the suite's time limit on a loaded 2-core machine."""


@pytest.mark.slow
def test_the_demo_runs_on_a_csv_of_text(tmp_path: Path, shared_data: Path) -> None:
    with np.load(shared_data / "sst2_minilm.npz") as z:
        texts = bytes(z["text_train_utf8"]).decode().split("\n")[:800]
        names = [str(c) for c in z["class_names"]]
        y = z["y_train"][:800]
    sst2 = _csv(
        tmp_path / "sst2.csv", ["sentence", "label"], [[t, names[v]] for t, v in zip(texts, y, strict=True)]
    )
    run = _demo(tmp_path, "text", "--data", str(sst2), "--encoder", "hashing:128", *SMALL)
    assert run["project"]["data_kind"] == "text" and run["project"]["input_shape"] == [128]
    assert run["rounds"] and all(r["status"] == "succeeded" for r in run["rounds"])
    assert run["evaluation"]["n_items"] == 800


@pytest.mark.slow
def test_the_demo_runs_on_an_image_folder(tmp_path: Path, shared_data: Path) -> None:
    with np.load(shared_data / "cifar10_test_cifar10h.npz") as z:
        # each z[...] reads (and inflates) the whole array again: read them once, not once per image
        X, y = z["X"], z["y"]
        classes = [str(c) for c in z["class_names"]]
    for i in np.flatnonzero(np.isin(y, [0, 1]))[:600]:
        _png(tmp_path / "cifar" / classes[y[i]] / f"{i}.png", X[i])
    run = _demo(
        tmp_path,
        "images",
        "--data",
        str(tmp_path / "cifar"),
        "--set",
        "epochs=3",  # the demo's cnn on 32x32 images; the test checks the path, not the model
        *SMALL,
    )
    project = run["project"]
    assert project["data_kind"] == "image" and project["input_shape"] == [32, 32, 3]
    assert project["classes"] == ["airplane", "automobile"]
    assert run["rounds"] and all(r["status"] == "succeeded" for r in run["rounds"])
    assert run["evaluation"]["n_items"] == 600
