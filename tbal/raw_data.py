"""Data sets from raw files, for ``tbal run --data``: a CSV / JSONL / JSON file of texts and labels
(encoded by a :mod:`tbal.encoders` text encoder, the features cached by file hash and encoder) and an image
folder (one sub-folder per class, every image decoded to one shape). Both become a
:class:`tbal.data.Dataset`; a row or file that cannot be used is a :class:`~tbal.errors.DataError`
naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tbal.data import Dataset, make_dataset
from tbal.errors import DataError

IMAGE_FILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def load_text_dataset(
    path: str | Path,
    *,
    text_column: str = "text",
    label_column: str = "label",
    encoder: str = "minilm",
    cache_dir: str | Path | None = None,
) -> Dataset:
    """A CSV / JSONL / JSON file of texts and labels (integers, or class names: sorted names become classes
    0..K-1) -> a feature data set, each text encoded by ``encoder`` (a :mod:`tbal.encoders` spec).

    With ``cache_dir`` the features are kept in ``<cache_dir>/<sha256 of the file>-<encoder>.npy`` and read
    back when the same file is loaded with the same encoder. Raises DataError naming the row or column.
    """
    from tbal.encoders import make_text_encoder
    from tbal.text_files import read_text_records

    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: no such file")
    raw = file.read_bytes()
    fmt = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}.get(file.suffix.lower())
    records = read_text_records(raw, fmt=fmt, text_column=text_column, label_column=label_column)
    labels = records.labels or []
    missing = [i for i, value in enumerate(labels) if value is None]
    if missing:
        raise DataError(f"{file.name}: row {missing[0]}: no label in column {label_column!r}")
    y, names = _labels_and_names(labels)
    cached = _cache_path(cache_dir, raw, encoder)
    if cached is not None and cached.is_file():
        X = np.load(cached)
        if X.shape[0] == len(records):
            return make_dataset(X, y, class_names=names)
    X = make_text_encoder(encoder).encode(records.texts)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.save(cached, X)
    return make_dataset(X, y, class_names=names)


def load_image_folder(root: str | Path, *, shape: tuple[int, ...] | None = None) -> Dataset:
    """The image-folder layout: one sub-folder of PNG/JPEG/WebP/BMP files per class (class names from the
    folder names, sorted) -> an image data set. ``shape`` (H, W) or (H, W, C): what every image is converted
    and resized to (:func:`tbal.encoders.images.decode_image`); default: the first image's size, grey when
    it is grey, else RGB. Raises DataError naming the file that cannot be used."""
    from tbal.encoders.images import ImageError, decode_image

    base = Path(root)
    if not base.is_dir():
        raise DataError(f"{base}: not a folder (expected one sub-folder of images per class)")
    classes = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = [
        (c, f)
        for c, name in enumerate(classes)
        for f in sorted((base / name).rglob("*"))
        if f.is_file() and f.suffix.lower() in IMAGE_FILE_SUFFIXES and not f.name.startswith(".")
    ]
    if len(classes) < 2 or not files:
        raise DataError(f"{base}: expected at least 2 class folders holding image files, got {classes}")
    target = shape if shape is not None else _first_image_shape(files[0][1])
    X = np.empty((len(files), *target), dtype=np.uint8)
    for i, (_c, f) in enumerate(files):
        try:
            X[i] = decode_image(f.read_bytes(), target)
        except ImageError as exc:
            raise DataError(f"{f}: {exc}") from exc
    y = np.array([c for c, _f in files], dtype=np.int64)
    return make_dataset(X, y, class_names=tuple(classes))


def _labels_and_names(labels: list[Any]) -> tuple[np.ndarray, tuple[str, ...] | None]:
    if all(isinstance(v, int) for v in labels):
        return np.asarray(labels, dtype=np.int64), None
    names = tuple(sorted({str(v) for v in labels}))
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[str(v)] for v in labels], dtype=np.int64), names


def _cache_path(cache_dir: str | Path | None, raw: bytes, encoder: str) -> Path | None:
    if cache_dir is None:
        return None
    import hashlib

    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in encoder)[:80]
    return Path(cache_dir) / f"{hashlib.sha256(raw).hexdigest()[:32]}-{safe}.npy"


def _first_image_shape(path: Path) -> tuple[int, ...]:
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            grey = image.mode in ("1", "L", "I;16", "I", "F")
    except OSError as exc:
        raise DataError(f"{path}: cannot read the image: {exc}") from exc
    return (height, width) if grey else (height, width, 3)
