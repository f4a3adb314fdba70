"""Raw data sets for the library: a text file encoded into a feature data set (with its cache) and an
image folder (one sub-folder per class) decoded into an image data set equal to the .npz it came from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tbal.data import DataError, prepare_inputs
from tbal.encoders import make_text_encoder
from tbal.raw_data import load_image_folder, load_text_dataset


def test_a_csv_of_texts_becomes_features_and_is_cached(tmp_path: Path) -> None:
    data = tmp_path / "reviews.csv"
    data.write_text("review,label\nsuperb film,pos\nawful film,neg\nlovely,pos\n", encoding="utf-8")
    ds = load_text_dataset(data, text_column="review", encoder="hashing:32", cache_dir=tmp_path / "cache")
    assert ds.kind == "features" and ds.X.shape == (3, 32) and ds.class_names == ("neg", "pos")
    np.testing.assert_array_equal(ds.y, [1, 0, 1])
    np.testing.assert_array_equal(
        ds.X, make_text_encoder("hashing:32").encode(["superb film", "awful film", "lovely"])
    )
    cached = list((tmp_path / "cache").glob("*-hashing_32.npy"))
    assert len(cached) == 1
    np.save(cached[0], np.ones((3, 32), np.float32))  # the cache is what is read back
    assert (
        load_text_dataset(
            data, text_column="review", encoder="hashing:32", cache_dir=tmp_path / "cache"
        ).X.sum()
        == 96
    )
    numbered = tmp_path / "n.jsonl"
    numbered.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": 0}\n')
    assert load_text_dataset(numbered, encoder="hashing:16").class_names == ("0", "1")
    unlabeled = tmp_path / "u.csv"
    unlabeled.write_text("text,label\nx,\n")
    with pytest.raises(DataError, match="row 0: no label"):
        load_text_dataset(unlabeled, encoder="hashing")


def test_an_image_folder_gives_the_npz_arrays(shared_data: Path, tmp_path: Path) -> None:
    with np.load(shared_data / "cifar10_test_cifar10h.npz") as z:
        X, y = z["X"][:30], z["y"][:30]
        names = [str(n) for n in z["class_names"]]
    for i, (x, c) in enumerate(zip(X, y, strict=True)):
        folder = tmp_path / "imgs" / names[int(c)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x).save(folder / f"{i:03d}.png")
    ds = load_image_folder(tmp_path / "imgs")
    present = sorted({names[int(c)] for c in y})
    assert ds.class_names == tuple(present) and ds.input_shape == (3, 32, 32)
    order = sorted(range(30), key=lambda i: (present.index(names[int(y[i])]), i))
    np.testing.assert_array_equal(ds.X, prepare_inputs(X[order])[0])
    np.testing.assert_array_equal(ds.y, [present.index(names[int(y[i])]) for i in order])
    (tmp_path / "imgs" / present[0] / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DataError, match=r"broken\.png"):
        load_image_folder(tmp_path / "imgs")
