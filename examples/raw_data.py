"""Raw data for the demo (``make demo DATA=...``): a CSV / JSONL / JSON file of labeled texts, or a folder
of images with one sub-folder per class (the image-folder layout: ``cat/001.png``, ``dog/002.jpg``).

Texts: the text and label columns are the ones given (``--text-column``, ``--label-column``), else the
first of :data:`TEXT_COLUMNS` / :data:`LABEL_COLUMNS` the file has, else (text) the column whose values
are longest on average. Every row needs a label (the demo answers the humans' queries from it). Images:
the class is the sub-folder's name; the project's input shape is the first image's (at most
:data:`MAX_SIDE` pixels a side; ``--image-size N`` sets N×N), RGB unless that image is greyscale; the
service resizes / centre-crops every image to it.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from tbal_client import find_images
from tbal_client.text_files import TextFileError, read_text_records

TEXT_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}
TEXT_COLUMNS = ("text", "sentence", "review", "content", "body", "document", "comment")
LABEL_COLUMNS = ("label", "labels", "class", "category", "target", "sentiment", "y")
MAX_SIDE = 64
SAMPLE_ROWS = 200
"""Rows looked at to find the text column by its values' length."""


class RawDataError(ValueError):
    """A file or folder the demo cannot read; the message says what is wrong."""


@dataclass(frozen=True)
class RawTexts:
    texts: list[str]
    labels: list[str]
    classes: list[str]
    external_ids: list[str]
    text_column: str
    label_column: str


@dataclass(frozen=True)
class RawImages:
    files: list[Path]
    root: Path
    labels: list[str]
    classes: list[str]
    external_ids: list[str]
    input_shape: list[int]


def is_text_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in TEXT_SUFFIXES


def load_texts(path: Path, *, text_column: str | None = None, label_column: str | None = None) -> RawTexts:
    """Labeled texts of ``path`` (see the module docstring); RawDataError naming what is wrong."""
    fmt = TEXT_SUFFIXES[path.suffix.lower()]
    data = path.read_bytes()
    columns, sample = _columns(data, fmt)
    text_col = text_column or _pick(columns, TEXT_COLUMNS) or _longest(columns, sample, path)
    label_col = label_column or _pick(columns, LABEL_COLUMNS)
    if label_col is None:
        raise RawDataError(f"{path}: no label column among {columns}; give --label-column")
    if text_col == label_col:
        raise RawDataError(f"{path}: the text and label columns are both {text_col!r}")
    try:
        records = read_text_records(data, fmt=fmt, text_column=text_col, label_column=label_col)
    except TextFileError as exc:
        raise RawDataError(f"{path}: {exc}") from exc
    labels = [str(v) if v is not None else "" for v in records.labels or []]
    missing = [i for i, v in enumerate(labels) if v == ""]
    if missing:
        raise RawDataError(f"{path}: row {missing[0]} has no label (the demo needs every row labeled)")
    classes = sorted(set(labels), key=_class_order)
    if len(classes) < 2:
        raise RawDataError(f"{path}: column {label_col!r} holds {len(classes)} class; at least 2 are needed")
    ids = [f"{path.stem}-{i}" for i in range(len(records.texts))]
    return RawTexts(records.texts, labels, classes, ids, text_col, label_col)


def load_images(root: Path, *, image_size: int | None = None) -> RawImages:
    """The images under ``root``'s class sub-folders (see the module docstring)."""
    files = [f for f in find_images(root) if f.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp")]
    files = [f for f in files if len(f.relative_to(root).parts) >= 2]
    if not files:
        raise RawDataError(f"{root}: no PNG/JPEG/WebP/BMP images in class sub-folders (cat/001.png, ...)")
    names = [f.relative_to(root).as_posix() for f in files]
    labels = [f.relative_to(root).parts[0] for f in files]
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise RawDataError(f"{root}: images of {len(classes)} class folder; at least 2 are needed")
    return RawImages(files, root, labels, classes, names, _image_shape(files[0], image_size))


def _image_shape(first: Path, image_size: int | None) -> list[int]:
    from PIL import Image

    with Image.open(first) as image:
        width, height = image.size
        grey = image.mode in ("1", "L", "I;16", "I")
    if image_size:
        height = width = image_size
    elif max(height, width) > MAX_SIDE:
        scale = MAX_SIDE / max(height, width)
        height, width = max(1, round(height * scale)), max(1, round(width * scale))
    return [height, width] if grey else [height, width, 3]


def _columns(data: bytes, fmt: str) -> tuple[list[str], list[dict[str, object]]]:
    """The file's column names and its first rows (as dicts)."""
    text = data.decode("utf-8-sig", errors="replace")
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        rows = [dict(row) for _, row in zip(range(SAMPLE_ROWS), reader, strict=False)]
        return list(reader.fieldnames or []), rows  # type: ignore[arg-type]
    if fmt == "jsonl":
        rows = [json.loads(line) for line in text.splitlines()[:SAMPLE_ROWS] if line.strip()]
    else:
        loaded = json.loads(text)
        rows = loaded[:SAMPLE_ROWS] if isinstance(loaded, list) else []
    objects = [r for r in rows if isinstance(r, dict)]
    return (list(objects[0]) if objects else []), objects


def _pick(columns: list[str], names: tuple[str, ...]) -> str | None:
    lower = {c.lower(): c for c in columns}
    return next((lower[n] for n in names if n in lower), None)


def _longest(columns: list[str], rows: list[dict[str, object]], path: Path) -> str:
    def mean_length(column: str) -> float:
        values = [r.get(column) for r in rows]
        return sum(len(v) for v in values if isinstance(v, str)) / max(1, len(values))

    if not columns:
        raise RawDataError(f"{path}: no columns found; give --text-column")
    return max(columns, key=mean_length)


def _class_order(name: str) -> tuple[int, float, str]:
    """Numeric class names in numeric order (0, 1, 2, 10), then the others alphabetically."""
    try:
        return (0, float(name), name)
    except ValueError:
        return (1, 0.0, name)
