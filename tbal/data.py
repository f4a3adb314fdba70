"""Loading .npz data sets and preparing inputs for the classifiers.

A data set file is a NumPy ``.npz`` archive (``../shared/data/DATA.md`` lists the real ones) with

- ``X`` and ``y`` (one split), or ``X_<split>`` and ``y_<split>`` (``X_train`` / ``y_train``,
  ``X_dev`` / ``y_dev``, ...);
- optionally ``soft`` (n, K) human label distributions and ``counts`` (n, K) human vote counts (per split:
  ``soft_<split>``, ``counts_<split>``), and ``class_names`` (K,) str or bytes.

Other keys (``X_exact_prefix``, texts) are ignored and never decompressed, except the split's texts
``text_<split>_utf8`` (``text_utf8`` beside X / y: the texts as UTF-8, one a line, as in
``sst2_minilm.npz``) when :func:`load_dataset` is asked to encode them instead of reading X. Data sets
from raw files (a CSV / JSONL file of texts, a folder of images per class) are read by
:mod:`tbal.raw_data`.

Inputs are prepared once for the classifiers (:func:`prepare_inputs`):

- uint8 images (n, H, W), (n, H, W, C) or (n, C, H, W) with C ∈ {1, 3, 4} → float32 (n, C, H, W) in
  [0, 1]. They are divided by 255, except when the largest value of the array is ≤ 16: 4-bit images such
  as scikit-learn's 8×8 digits (values 0..16) are divided by 16. Pass ``scale=`` to fix the divisor (e.g.
  when preparing a single new image of a data set whose scale is known).
- numeric feature vectors (n, d) (float16 / float32 / float64 / integers) → float32 (n, d), unscaled.
- float32 arrays already of shape (n, C, H, W) with C ∈ {1, 3} and values in [0, 1] pass unchanged, so
  that preparing twice is harmless.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tbal.errors import DataError

__all__ = ["DataError", "Dataset", "load_dataset", "make_dataset", "prepare_inputs"]

SOFT_ROW_TOLERANCE = 1e-3
"""Largest accepted |Σ_k soft[i, k] − 1| of a human label distribution."""

_FOUR_BIT_MAX = 16


@dataclass(frozen=True)
class Dataset:
    """A data set ready for the loop.

    X: prepared inputs, float32: images as (n, C, H, W) scaled to [0, 1]; feature vectors as (n, d).
    y: (n,) int64 ground-truth labels in [0, K) (used only to simulate humans and to measure true error).
    soft: (n, K) float32 human label distributions (rows sum to 1) or None.
    counts: (n, K) int vote counts or None.
    kind: "image" or "features"; input_shape: X.shape[1:]; class_names: K names.
    """

    X: np.ndarray
    y: np.ndarray
    kind: Literal["image", "features"]
    class_names: tuple[str, ...]
    soft: np.ndarray | None = None
    counts: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.X.shape[1:])

    def __len__(self) -> int:
        return int(self.X.shape[0])


def prepare_inputs(
    X: np.ndarray, *, scale: float | None = None
) -> tuple[np.ndarray, Literal["image", "features"]]:
    """uint8 (n,H,W) / (n,H,W,C) images -> float32 (n,C,H,W) in [0,1]; float (n,d) -> float32 (n,d).

    Images are divided by ``scale``; when None, by 16 if the array's largest value is ≤ 16 (4-bit images
    such as scikit-learn's digits) and by 255 otherwise. Channel-last (n, H, W, C) and channel-first
    (n, C, H, W) uint8 arrays are both accepted (C ∈ {1, 3, 4}; channel-last wins when both fit).
    Raises DataError for other dtypes or shapes and for NaN / inf feature values.
    """
    if not isinstance(X, np.ndarray):
        raise DataError(f"expected X as a numpy array, got {type(X).__name__}")
    if X.ndim < 2 or X.shape[0] == 0:
        raise DataError(f"expected X of shape (n, d) or (n, H, W[, C]) with n ≥ 1, got shape {X.shape}")
    if X.dtype == np.uint8 and X.ndim in (3, 4):
        return _prepare_images(X, scale), "image"
    if X.ndim == 2 and (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        out = np.ascontiguousarray(X, dtype=np.float32)
        _check_finite(out, "X")
        return out, "features"
    if X.ndim == 4 and np.issubdtype(X.dtype, np.floating) and X.shape[1] in (1, 3):
        out = np.ascontiguousarray(X, dtype=np.float32)
        _check_finite(out, "X")
        lo, hi = float(out.min()), float(out.max())
        if lo < 0.0 or hi > 1.0:
            raise DataError(
                "expected float images of shape (n, C, H, W) already scaled to [0, 1], "
                f"got values in [{lo:g}, {hi:g}]; pass uint8 images to have them scaled"
            )
        return out, "image"
    raise DataError(
        "expected X as uint8 images (n, H, W), (n, H, W, C) or (n, C, H, W), prepared float images "
        f"(n, C, H, W), or numeric feature vectors (n, d); got dtype {X.dtype} and shape {X.shape}"
    )


def _prepare_images(X: np.ndarray, scale: float | None) -> np.ndarray:
    if X.ndim == 3:
        chw = X[:, None, :, :]  # (n, 1, H, W)
    elif X.ndim == 4 and X.shape[3] in (1, 3, 4):
        chw = X.transpose(0, 3, 1, 2)  # (n, H, W, C) -> (n, C, H, W)
    elif X.ndim == 4 and X.shape[1] in (1, 3, 4):
        chw = X
    else:
        raise DataError(
            "expected uint8 images of shape (n, H, W), (n, H, W, C) or (n, C, H, W) with C in {1, 3, 4}, "
            f"got shape {X.shape}"
        )
    if scale is None:
        scale = float(_FOUR_BIT_MAX) if int(X.max()) <= _FOUR_BIT_MAX else 255.0
    if not scale > 0:
        raise DataError(f"expected a positive image scale, got {scale!r}")
    out = np.empty(chw.shape, dtype=np.float32)
    np.multiply(chw, np.float32(1.0 / scale), out=out, casting="unsafe")
    if float(out.max()) > 1.0 + 1e-6:
        raise DataError(f"images divided by scale {scale:g} exceed 1 (largest value {int(X.max())})")
    return out


def make_dataset(
    X: np.ndarray,
    y: np.ndarray,
    *,
    soft: np.ndarray | None = None,
    counts: np.ndarray | None = None,
    class_names: tuple[str, ...] | None = None,
) -> Dataset:
    """Validate raw arrays (NaN/inf, label range, shapes, soft rows summing to 1) and prepare them.

    X: raw inputs (see :func:`prepare_inputs`); y: (n,) integer labels ≥ 0 (floats holding whole numbers
    are accepted); soft: (n, K) distributions (non-negative, rows summing to 1 within 1e-3, renormalised
    exactly); counts: (n, K) non-negative vote counts; when only counts are given, soft = counts / row sum
    (every row needs at least one vote). K = len(class_names) when given, else soft.shape[1] or
    counts.shape[1], else max(y) + 1; names default to "0" .. "K-1". Raises DataError naming the problem.
    """
    X_prepared, kind = prepare_inputs(X)
    n = X_prepared.shape[0]
    labels = _check_labels(y, n)

    names = _check_class_names(class_names) if class_names is not None else None
    counts_arr = _check_counts(counts, n) if counts is not None else None
    soft_arr = _check_soft(soft, n) if soft is not None else None
    if soft_arr is None and counts_arr is not None:
        soft_arr = _soft_from_counts(counts_arr)
    if soft_arr is not None and counts_arr is not None and soft_arr.shape != counts_arr.shape:
        raise DataError(f"soft has shape {soft_arr.shape} but counts has shape {counts_arr.shape}")

    if names is not None:
        k = len(names)
    elif soft_arr is not None:
        k = soft_arr.shape[1]
    else:
        k = int(labels.max()) + 1
    if soft_arr is not None and soft_arr.shape[1] != k:
        raise DataError(f"soft/counts have {soft_arr.shape[1]} columns but there are {k} class names")
    if k < 2:
        raise DataError(f"a data set needs at least 2 classes, got {k}")
    if int(labels.max()) >= k:
        raise DataError(
            f"y holds labels up to {int(labels.max())} but there are only {k} classes "
            f"(labels must be in [0, {k}))"
        )
    if names is None:
        names = tuple(str(i) for i in range(k))
    return Dataset(X=X_prepared, y=labels, kind=kind, class_names=names, soft=soft_arr, counts=counts_arr)


def load_dataset(path: str | Path, *, split: str = "auto", text_encoder: str | None = None) -> Dataset:
    """Load a .npz file: keys X/y, or X_train/y_train (split "train"), X_dev/y_dev, ...;
    optional soft, counts, class_names. Raises DataError naming what is wrong.

    ``text_encoder``: a :mod:`tbal.encoders` text spec; the split's inputs are then its texts
    (``text_<split>_utf8``) encoded by it instead of X (e.g. ``minilm-tokens`` for the ``minilm`` model,
    which reads word pieces, from a file that stores sentence embeddings as X).

    ``split="auto"``: X / y when present, else X_train / y_train. ``split="<name>"``: X_<name> / y_<name>
    with soft_<name> / counts_<name> when present (``soft`` / ``counts`` go with X / y). Only the arrays a
    split needs are decompressed.
    """
    file = Path(path)
    with _open_npz(file, "keys X and y") as archive:
        keys = set(archive.files)
        x_key, y_key, suffix = _split_keys(keys, split, file)
        y = _read(archive, y_key, file)
        if text_encoder is None:
            X = _read(archive, x_key, file)
        else:
            X = _encoded_texts(archive, f"text{suffix}_utf8", file, text_encoder, len(y))
        soft = _read(archive, f"soft{suffix}", file) if f"soft{suffix}" in keys else None
        counts = _read(archive, f"counts{suffix}", file) if f"counts{suffix}" in keys else None
        names = _names_from_array(_read(archive, "class_names", file)) if "class_names" in keys else None
    try:
        return make_dataset(X, y, soft=soft, counts=counts, class_names=names)
    except DataError as exc:
        raise DataError(f"{file.name} (split {split!r}): {exc}") from exc


def input_shape(path: str | Path, *, split: str = "auto") -> tuple[int, ...]:
    """The shape of one input of a .npz's ``split`` (its X's shape less the first axis), read from the
    array's header without decompressing the array (so that ``tbal run`` can tell images from feature
    vectors before it loads them); raises DataError as :func:`load_dataset` does."""
    file = Path(path)
    with _open_npz(file, "keys X and y") as archive:
        x_key, _y_key, _suffix = _split_keys(set(archive.files), split, file)
        readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        with archive.zip.open(f"{x_key}.npy") as member:
            reader = readers.get(np.lib.format.read_magic(member))
            if reader is not None:
                shape: tuple[int, ...] = reader(member)[0]
                return tuple(shape[1:])
        return tuple(_read(archive, x_key, file).shape[1:])  # a newer header format: read the array


def holds_texts(path: str | Path, *, split: str = "auto") -> bool:
    """Whether a .npz holds the texts of ``split`` (``text_<split>_utf8``, or ``text_utf8`` beside X / y)
    that :func:`load_dataset` can encode instead of X; raises DataError as it does."""
    file = Path(path)
    with _open_npz(file, "keys X and y") as archive:
        _x_key, _y_key, suffix = _split_keys(set(archive.files), split, file)
        return f"text{suffix}_utf8" in archive.files


def load_inputs(path: str | Path) -> np.ndarray:
    """Prepared inputs (:func:`prepare_inputs`) of the key X of a .npz file that needs no labels, e.g. an
    out-of-distribution set; raises DataError naming what is wrong."""
    file = Path(path)
    with _open_npz(file, "the inputs as X") as archive:
        if "X" not in archive.files:
            found = ", ".join(sorted(archive.files)) or "none"
            raise DataError(f"{file.name}: expected the inputs as key X; found keys: {found}")
        X = _read(archive, "X", file)
    return prepare_inputs(X)[0]


def _open_npz(file: Path, expected: str) -> Any:
    """The open .npz archive at ``file`` (use it as a context manager); DataError when the file is missing,
    not an archive, or a single .npy array (``expected`` says what the archive should hold)."""
    if not file.exists():
        raise DataError(f"data set file {str(file)!r} not found")
    if not file.is_file():
        raise DataError(f"data set path {str(file)!r} is not a file")
    try:
        archive = np.load(file, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{str(file)!r} is not a NumPy .npz archive ({exc})") from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{str(file)!r} holds a single .npy array; expected an .npz archive with {expected}")
    return archive


def _split_keys(keys: set[str], split: str, file: Path) -> tuple[str, str, str]:
    """The X key, y key and key suffix ('' or '_<split>') of ``split``."""
    splits = sorted(k[2:] for k in keys if k.startswith("X_") and f"y_{k[2:]}" in keys)
    found = ", ".join(sorted(keys)) or "none"
    if split == "auto":
        if "X" in keys and "y" in keys:
            return "X", "y", ""
        if "X_train" in keys and "y_train" in keys:
            return "X_train", "y_train", "_train"
        raise DataError(
            f"{file.name}: expected keys X and y, or X_train and y_train (optional: soft, counts, "
            f"class_names); found keys: {found}"
        )
    if f"X_{split}" in keys and f"y_{split}" in keys:
        return f"X_{split}", f"y_{split}", f"_{split}"
    available = ["auto", *splits]
    raise DataError(
        f"{file.name}: no split {split!r} (expected keys X_{split} and y_{split}); "
        f"available splits: {', '.join(available)}; found keys: {found}"
    )


def _encoded_texts(archive: Any, key: str, file: Path, encoder: str, count: int) -> np.ndarray:
    """The texts under ``key`` (UTF-8, one a line) encoded by ``encoder``: (count, dim) float32."""
    from tbal.encoders import make_text_encoder

    if key not in archive.files:
        raise DataError(
            f"{file.name}: the encoder {encoder!r} needs the texts of the split (key {key!r}: UTF-8, one "
            "a line), which the file does not hold; give a CSV / JSONL file of texts instead"
        )
    try:
        texts = bytes(_read(archive, key, file)).decode("utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise DataError(f"{file.name}: key {key!r} is not UTF-8 text ({exc.reason})") from exc
    if len(texts) != count:
        raise DataError(f"{file.name}: key {key!r} holds {len(texts)} lines of text for {count} labels")
    return make_text_encoder(encoder).encode(texts)


def _read(archive: Any, key: str, file: Path) -> np.ndarray:
    try:
        return np.asarray(archive[key])
    except ValueError as exc:
        raise DataError(
            f"{file.name}: key {key!r} could not be read without pickle ({exc}); store it as a plain "
            "numeric or fixed-width string array"
        ) from exc
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{file.name}: key {key!r} is damaged ({exc})") from exc


def _names_from_array(arr: np.ndarray) -> tuple[str, ...]:
    if arr.ndim != 1:
        raise DataError(f"expected class_names of shape (K,), got shape {arr.shape}")
    if arr.dtype.kind == "S":
        return tuple(v.decode("utf-8") for v in arr.tolist())
    if arr.dtype.kind == "U":
        return tuple(str(v) for v in arr.tolist())
    raise DataError(f"expected class_names as strings or bytes, got dtype {arr.dtype}")


def _check_class_names(names: tuple[str, ...] | Any) -> tuple[str, ...]:
    if isinstance(names, np.ndarray):
        names = _names_from_array(names)
    if isinstance(names, str) or not all(isinstance(v, str) for v in names):
        raise DataError(f"expected class_names as a sequence of strings, got {names!r}")
    out = tuple(names)
    if len(set(out)) != len(out):
        duplicated = sorted({v for v in out if out.count(v) > 1})
        raise DataError(f"class_names must be distinct, got duplicates {duplicated}")
    return out


def _check_labels(y: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,):
        raise DataError(f"expected y of shape ({n},) to match X's {n} rows, got shape {y.shape}")
    if np.issubdtype(y.dtype, np.integer):
        labels = y.astype(np.int64)
    elif np.issubdtype(y.dtype, np.floating):
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            raise DataError(
                f"y must hold integer class labels, got {y.dtype} values such as {y[np.argmax(bad)]!r}"
            )
        labels = y.astype(np.int64)
    else:
        raise DataError(f"y must hold integer class labels, got dtype {y.dtype}")
    if labels.min() < 0:
        raise DataError(f"y must hold class labels ≥ 0, got {int(labels.min())}")
    return labels


def _check_soft(soft: np.ndarray, n: int) -> np.ndarray:
    soft = np.asarray(soft)
    if soft.ndim != 2 or soft.shape[0] != n:
        raise DataError(f"expected soft of shape ({n}, K) to match X's {n} rows, got shape {soft.shape}")
    if not np.issubdtype(soft.dtype, np.number):
        raise DataError(f"expected soft as numbers, got dtype {soft.dtype}")
    out = soft.astype(np.float64)
    _check_finite(out, "soft")
    if out.min() < 0:
        row = int(np.argmax((out < 0).any(axis=1)))
        raise DataError(f"soft must be non-negative, got {out.min():g} in row {row}")
    sums = out.sum(axis=1)
    off = np.abs(sums - 1.0)
    if off.max() > SOFT_ROW_TOLERANCE:
        row = int(np.argmax(off))
        raise DataError(
            f"soft rows must sum to 1 (tolerance {SOFT_ROW_TOLERANCE:g}), "
            f"got row {row} summing to {sums[row]:.6g}"
        )
    return (out / sums[:, None]).astype(np.float32)


def _check_counts(counts: np.ndarray, n: int) -> np.ndarray:
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[0] != n:
        raise DataError(f"expected counts of shape ({n}, K) to match X's {n} rows, got shape {counts.shape}")
    if np.issubdtype(counts.dtype, np.floating):
        if not np.isfinite(counts).all() or (counts != np.round(counts)).any():
            raise DataError("counts must hold whole numbers of votes, got non-integer or non-finite values")
    elif not np.issubdtype(counts.dtype, np.integer):
        raise DataError(f"counts must hold integer vote counts, got dtype {counts.dtype}")
    out = counts.astype(np.int64)
    if out.min() < 0:
        row = int(np.argmax((out < 0).any(axis=1)))
        raise DataError(f"counts must be non-negative, got {int(out.min())} in row {row}")
    return out


def _soft_from_counts(counts: np.ndarray) -> np.ndarray:
    totals = counts.sum(axis=1)
    if (totals == 0).any():
        row = int(np.argmax(totals == 0))
        raise DataError(f"counts row {row} has no votes; soft labels = counts / row sum need ≥ 1 vote a row")
    return (counts / totals[:, None]).astype(np.float32)


def _check_finite(arr: np.ndarray, name: str) -> None:
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.argwhere(~finite)[0]
        row = int(bad[0])
        value = arr[tuple(bad)]
        raise DataError(f"{name} must be finite, got {value} (NaN or inf) in row {row}")
