"""Loading and validating data sets: the real files in ../shared/data and small broken temp files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tbal.data import DataError, load_dataset, make_dataset, prepare_inputs
from tests.tbal.synthetic import write_npz

DATA_DIR = Path(os.environ.get("TBAL_DATA_DIR", Path(__file__).resolve().parents[3] / "shared" / "data"))


def _shared(name: str) -> Path:
    path = DATA_DIR / name
    if not path.exists():
        pytest.skip(f"shared data file {path} is not present")
    return path


# ---------------------------------------------------------------------------------------------- real files


def test_mnist_images_scaled_by_255() -> None:
    ds = load_dataset(_shared("mnist_test.npz"))
    assert ds.X.shape == (10000, 1, 28, 28) and ds.X.dtype == np.float32
    assert ds.kind == "image" and ds.input_shape == (1, 28, 28)
    assert ds.class_names == tuple(str(i) for i in range(10))
    assert ds.y.dtype == np.int64 and set(np.unique(ds.y)) == set(range(10))
    assert ds.X.min() == 0.0 and ds.X.max() == 1.0
    grey = ds.X[:50] * 255.0
    np.testing.assert_allclose(grey, np.round(grey), atol=1e-3)  # integer grey levels / 255
    assert ds.soft is None and ds.counts is None


def test_digits_images_scaled_by_16() -> None:
    ds = load_dataset(_shared("sklearn_digits.npz"))
    assert ds.X.shape == (1797, 1, 8, 8) and ds.num_classes == 10
    assert ds.X.max() == 1.0
    raw = np.load(_shared("sklearn_digits.npz"))["X"]
    np.testing.assert_array_equal(ds.X[:, 0] * 16.0, raw.astype(np.float32))


def test_cifar10h_soft_labels_and_channels_first() -> None:
    path = _shared("cifar10_test_cifar10h.npz")
    ds = load_dataset(path)
    raw = np.load(path)
    assert ds.X.shape == (10000, 3, 32, 32)
    # channel-last (H, W, C) -> channel-first (C, H, W): pixel (5, 7) channel 2 of image 3
    assert ds.X[3, 2, 5, 7] == pytest.approx(raw["X"][3, 5, 7, 2] / 255.0)
    assert ds.class_names[0] == "airplane" and ds.num_classes == 10
    assert ds.soft is not None and ds.counts is not None
    assert ds.soft.shape == (10000, 10) and ds.soft.dtype == np.float32
    np.testing.assert_allclose(ds.soft.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(ds.soft, ds.counts / ds.counts.sum(axis=1, keepdims=True), atol=1e-5)
    assert (ds.soft.argmax(axis=1) == ds.y).mean() == pytest.approx(0.9921, abs=1e-4)  # DATA.md


def test_sst2_features_and_splits() -> None:
    path = _shared("sst2_minilm.npz")
    train = load_dataset(path)  # auto: no X/y, so X_train / y_train
    assert train.X.shape == (67349, 384) and train.X.dtype == np.float32
    assert train.kind == "features" and train.class_names == ("negative", "positive")
    dev = load_dataset(path, split="dev")
    assert dev.X.shape == (872, 384) and len(dev.y) == 872
    raw = np.load(path)["X_dev"]
    np.testing.assert_array_equal(dev.X, raw.astype(np.float32))  # features are not rescaled
    with pytest.raises(DataError, match=r"no split 'test'.*available splits: auto, dev, train"):
        load_dataset(path, split="test")


# ---------------------------------------------------------------------------------------------- bad files


def _npz(tmp_path: Path, **arrays: np.ndarray) -> Path:
    return write_npz(tmp_path / "data.npz", **arrays)


def _images(n: int = 6) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(n, 4, 4), dtype=np.uint8)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_dataset(tmp_path / "nope.npz")


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is not a file"):
        load_dataset(tmp_path)


def test_text_file_is_not_an_npz(tmp_path: Path) -> None:
    path = tmp_path / "data.npz"
    path.write_text("x,y\n1,2\n")
    with pytest.raises(DataError, match=r"not a NumPy \.npz archive"):
        load_dataset(path)


def test_npy_file_is_not_an_npz(tmp_path: Path) -> None:
    path = tmp_path / "data.npy"
    np.save(path, np.zeros((3, 2)))
    with pytest.raises(DataError, match=r"single \.npy array"):
        load_dataset(path)


def test_missing_keys_lists_found_and_accepted(tmp_path: Path) -> None:
    path = _npz(tmp_path, images=_images(), labels=np.zeros(6, dtype=np.int64))
    with pytest.raises(DataError) as info:
        load_dataset(path)
    message = str(info.value)
    assert "expected keys X and y, or X_train and y_train" in message
    assert "found keys: images, labels" in message


def test_length_mismatch(tmp_path: Path) -> None:
    path = _npz(tmp_path, X=_images(6), y=np.zeros(5, dtype=np.int64))
    with pytest.raises(DataError, match=r"expected y of shape \(6,\).*got shape \(5,\)"):
        load_dataset(path)


def test_non_integer_labels(tmp_path: Path) -> None:
    path = _npz(tmp_path, X=_images(3), y=np.array([0.0, 1.5, 1.0]))
    with pytest.raises(DataError, match=r"integer class labels.*1\.5"):
        load_dataset(path)


def test_whole_float_labels_are_accepted(tmp_path: Path) -> None:
    ds = load_dataset(_npz(tmp_path, X=_images(3), y=np.array([0.0, 2.0, 1.0])))
    assert ds.y.dtype == np.int64 and ds.y.tolist() == [0, 2, 1] and ds.num_classes == 3


def test_string_labels(tmp_path: Path) -> None:
    path = _npz(tmp_path, X=_images(2), y=np.array(["cat", "dog"]))
    with pytest.raises(DataError, match="integer class labels, got dtype <U3"):
        load_dataset(path)


def test_negative_labels(tmp_path: Path) -> None:
    path = _npz(tmp_path, X=_images(3), y=np.array([0, -1, 1]))
    with pytest.raises(DataError, match="labels ≥ 0, got -1"):
        load_dataset(path)


def test_labels_beyond_class_names(tmp_path: Path) -> None:
    path = _npz(tmp_path, X=_images(3), y=np.array([0, 1, 2]), class_names=np.array(["a", "b"]))
    with pytest.raises(DataError, match=r"labels up to 2 but there are only 2 classes"):
        load_dataset(path)


def test_nan_and_inf_features(tmp_path: Path) -> None:
    X = np.ones((4, 3), dtype=np.float16)
    X[2, 1] = np.nan
    with pytest.raises(DataError, match=r"X must be finite, got nan .*row 2"):
        load_dataset(_npz(tmp_path, X=X, y=np.array([0, 1, 0, 1])))
    X[2, 1] = np.inf
    with pytest.raises(DataError, match=r"X must be finite, got inf"):
        load_dataset(_npz(tmp_path, X=X, y=np.array([0, 1, 0, 1])))


def test_soft_rows_not_summing_to_one(tmp_path: Path) -> None:
    soft = np.array([[0.5, 0.5], [0.7, 0.2], [0.0, 1.0]], dtype=np.float32)
    path = _npz(tmp_path, X=_images(3), y=np.array([0, 0, 1]), soft=soft)
    with pytest.raises(DataError, match=r"soft rows must sum to 1 .*row 1 summing to 0.9"):
        load_dataset(path)


def test_soft_within_tolerance_is_renormalised(tmp_path: Path) -> None:
    soft = np.array([[0.5, 0.5004], [0.3, 0.7]], dtype=np.float64)
    ds = load_dataset(_npz(tmp_path, X=_images(2), y=np.array([0, 1]), soft=soft))
    assert ds.soft is not None
    np.testing.assert_allclose(ds.soft.sum(axis=1), 1.0, atol=1e-6)


def test_soft_wrong_shape(tmp_path: Path) -> None:
    path = _npz(tmp_path, X=_images(3), y=np.array([0, 0, 1]), soft=np.full((2, 2), 0.5))
    with pytest.raises(DataError, match=r"expected soft of shape \(3, K\).*got shape \(2, 2\)"):
        load_dataset(path)


def test_soft_columns_differ_from_class_names(tmp_path: Path) -> None:
    path = _npz(
        tmp_path,
        X=_images(2),
        y=np.array([0, 1]),
        soft=np.full((2, 2), 0.5),
        class_names=np.array(["a", "b", "c"]),
    )
    with pytest.raises(DataError, match="soft/counts have 2 columns but there are 3 class names"):
        load_dataset(path)


def test_negative_soft(tmp_path: Path) -> None:
    soft = np.array([[1.2, -0.2], [0.5, 0.5]])
    with pytest.raises(DataError, match="soft must be non-negative"):
        load_dataset(_npz(tmp_path, X=_images(2), y=np.array([0, 1]), soft=soft))


def test_negative_counts(tmp_path: Path) -> None:
    counts = np.array([[3, -1], [2, 2]], dtype=np.int16)
    with pytest.raises(DataError, match=r"counts must be non-negative, got -1 in row 0"):
        load_dataset(_npz(tmp_path, X=_images(2), y=np.array([0, 1]), counts=counts))


def test_counts_alone_give_soft(tmp_path: Path) -> None:
    counts = np.array([[3, 1, 0], [0, 0, 5]], dtype=np.int16)
    ds = load_dataset(_npz(tmp_path, X=_images(2), y=np.array([0, 2]), counts=counts))
    assert ds.num_classes == 3  # K from the counts' columns, not max(y) + 1
    assert ds.soft is not None and ds.counts is not None
    np.testing.assert_allclose(ds.soft, [[0.75, 0.25, 0.0], [0.0, 0.0, 1.0]])


def test_counts_row_without_votes(tmp_path: Path) -> None:
    counts = np.array([[3, 1], [0, 0]])
    with pytest.raises(DataError, match="counts row 1 has no votes"):
        load_dataset(_npz(tmp_path, X=_images(2), y=np.array([0, 1]), counts=counts))


def test_pickled_class_names_are_refused(tmp_path: Path) -> None:
    names = np.array(["a", "b"], dtype=object)
    path = _npz(tmp_path, X=_images(2), y=np.array([0, 1]), class_names=names)
    with pytest.raises(DataError, match="'class_names' could not be read without pickle"):
        load_dataset(path)


def test_bytes_class_names(tmp_path: Path) -> None:
    names = np.array([b"neg", b"pos"])
    ds = load_dataset(_npz(tmp_path, X=np.zeros((2, 3)), y=np.array([0, 1]), class_names=names))
    assert ds.class_names == ("neg", "pos") and ds.kind == "features"


def test_split_keys_and_auto(tmp_path: Path) -> None:
    arrays = {
        "X_train": np.zeros((4, 2)),
        "y_train": np.array([0, 1, 0, 1]),
        "X_dev": np.ones((2, 2)),
        "y_dev": np.array([1, 1]),
        "soft_dev": np.array([[0.2, 0.8], [0.0, 1.0]]),
    }
    path = _npz(tmp_path, **arrays)
    assert len(load_dataset(path)) == 4
    dev = load_dataset(path, split="dev")
    assert len(dev) == 2 and dev.soft is not None and dev.soft[0, 1] == pytest.approx(0.8)
    assert load_dataset(path, split="train").soft is None


# ---------------------------------------------------------------------------------------------- arrays


def test_prepare_inputs_layouts() -> None:
    rng = np.random.default_rng(1)
    hwc = rng.integers(0, 256, size=(2, 5, 6, 3), dtype=np.uint8)
    out, kind = prepare_inputs(hwc)
    assert kind == "image" and out.shape == (2, 3, 5, 6) and out.dtype == np.float32
    np.testing.assert_allclose(out, hwc.transpose(0, 3, 1, 2) / 255.0, rtol=1e-6)
    chw = np.ascontiguousarray(hwc.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(prepare_inputs(chw)[0], out)
    again, kind_again = prepare_inputs(out)  # already prepared: unchanged
    np.testing.assert_array_equal(again, out)
    assert kind_again == "image"


def test_prepare_inputs_scale_rule() -> None:
    four_bit = np.array([[[0, 8], [16, 4]]], dtype=np.uint8)
    np.testing.assert_allclose(prepare_inputs(four_bit)[0][0, 0], [[0, 0.5], [1.0, 0.25]])
    eight_bit = np.array([[[0, 17], [255, 4]]], dtype=np.uint8)
    np.testing.assert_allclose(prepare_inputs(eight_bit)[0][0, 0], [[0, 17 / 255], [1.0, 4 / 255]])
    np.testing.assert_allclose(prepare_inputs(four_bit, scale=255.0)[0][0, 0, 1, 0], 16 / 255)


def test_prepare_inputs_rejects_bad_arrays() -> None:
    with pytest.raises(DataError, match="got dtype float64 and shape"):
        prepare_inputs(np.zeros((2, 3, 4)))
    with pytest.raises(DataError, match=r"already scaled to \[0, 1\]"):
        prepare_inputs(np.full((1, 1, 2, 2), 3.0))
    with pytest.raises(DataError, match="with C in"):
        prepare_inputs(np.zeros((2, 5, 5, 7), dtype=np.uint8))
    with pytest.raises(DataError, match="n ≥ 1"):
        prepare_inputs(np.zeros((0, 3)))


def test_make_dataset_defaults_and_checks() -> None:
    ds = make_dataset(np.zeros((3, 2), dtype=np.float64), np.array([0, 2, 1], dtype=np.int32))
    assert ds.class_names == ("0", "1", "2") and ds.y.dtype == np.int64 and ds.X.dtype == np.float32
    with pytest.raises(DataError, match="at least 2 classes"):
        make_dataset(np.zeros((2, 2)), np.array([0, 0]))
    with pytest.raises(DataError, match="duplicates"):
        make_dataset(np.zeros((2, 2)), np.array([0, 1]), class_names=("a", "a"))
