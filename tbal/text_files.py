"""Reading text items from the files people have: a JSON list, JSON Lines, or CSV with a header row.

``read_text_records(data, fmt=..., text_column=..., id_column=..., label_column=...)`` -> :class:`TextRecords`
(the texts, and their ids and labels when the file names those columns). Files are UTF-8 (a byte-order
mark is allowed); each text is checked by :func:`tbal.encoders.text_problem` (not empty, at most
:data:`tbal.encoders.MAX_TEXT_CHARS` characters, no NUL). Errors are :class:`~tbal.errors.DataError`
naming the row (``row 3: ...``; rows count from 0, the CSV header not included).

- ``json``: ``["a sentence", ...]`` or ``[{"text": ..., "id": ..., "label": ...}, ...]``;
- ``jsonl``: one JSON string or object per line (blank lines skipped);
- ``csv``: a header row naming the columns (``text_column`` must be one of them).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from tbal.encoders.base import text_problem
from tbal.errors import DataError

TEXT_FORMATS = ("json", "jsonl", "csv")
MAX_FIELD_CHARS = 1 << 20


@dataclass(frozen=True)
class TextRecords:
    """texts (n,); ids (n,) strings or None (the file has no id column); labels (n,) class names or
    indices (None: unlabeled row) or None (no label column)."""

    texts: list[str]
    ids: list[str] | None = None
    labels: list[str | int | None] | None = None

    def __len__(self) -> int:
        return len(self.texts)


def sniff_text_format(data: bytes) -> str:
    """``json`` when the file starts with ``[``, ``jsonl`` with ``{`` or ``"``, else ``csv``."""
    head = data[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"["):
        return "json"
    if head.startswith((b"{", b'"')):
        return "jsonl"
    return "csv"


def read_text_records(
    data: bytes,
    *,
    fmt: str | None = None,
    text_column: str = "text",
    id_column: str | None = None,
    label_column: str | None = None,
) -> TextRecords:
    """Parse a text file's bytes (see the module docstring); raises DataError naming the row."""
    if not data.strip():
        raise DataError("the file is empty")
    fmt = fmt or sniff_text_format(data)
    if fmt not in TEXT_FORMATS:
        raise DataError(f"unknown text format {fmt!r}; valid: {', '.join(TEXT_FORMATS)}")
    content = _decode(data)
    if fmt == "csv":
        rows: list[Any] = _csv_rows(content, text_column, id_column, label_column)
    elif fmt == "json":
        try:
            rows = json.loads(content)
        except ValueError as exc:
            raise DataError(f"not valid JSON: {exc}") from exc
        if not isinstance(rows, list):
            raise DataError(f"expected a JSON list of strings or objects, got {type(rows).__name__}")
    else:
        rows = _jsonl_rows(content)
    if not rows:
        raise DataError("the file holds no text items")
    return _records(rows, text_column, id_column, label_column)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"not UTF-8: invalid byte at offset {exc.start} (line {line})") from exc


def _jsonl_rows(content: str) -> list[Any]:
    rows = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError as exc:
            raise DataError(f"line {number}: not valid JSON: {exc}") from exc
    return rows


def _csv_rows(content: str, text_column: str, id_column: str | None, label_column: str | None) -> list[Any]:
    csv.field_size_limit(MAX_FIELD_CHARS)
    reader = csv.DictReader(io.StringIO(content, newline=""))
    try:
        header = reader.fieldnames or []
        for column in (text_column, id_column, label_column):
            if column is not None and column not in header:
                raise DataError(
                    f"the CSV has no column {column!r}; its columns: {', '.join(header) or 'none'}"
                )
        return list(reader)
    except csv.Error as exc:
        raise DataError(f"line {reader.line_num}: not valid CSV: {exc}") from exc


def _records(
    rows: list[Any], text_column: str, id_column: str | None, label_column: str | None
) -> TextRecords:
    texts: list[str] = []
    ids: list[str] | None = [] if id_column else None
    labels: list[str | int | None] | None = [] if label_column else None
    for i, row in enumerate(rows):
        if isinstance(row, str):
            if id_column or label_column:
                raise DataError(f"row {i}: a plain string has no {id_column or label_column!r} field")
            texts.append(_text(row, i))
            continue
        if not isinstance(row, dict):
            raise DataError(f"row {i}: expected a string or an object, got {type(row).__name__}")
        if text_column not in row:
            raise DataError(f"row {i}: no field {text_column!r}")
        texts.append(_text(row[text_column], i))
        if ids is not None:
            ids.append(_id(row.get(str(id_column)), i))
        if labels is not None:
            labels.append(_label(row.get(str(label_column)), i))
    return TextRecords(texts, ids, labels)


def _text(value: Any, i: int) -> str:
    problem = text_problem(value)
    if problem:
        raise DataError(f"row {i}: {problem}")
    return str(value)


def _id(value: Any, i: int) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "":
        raise DataError(f"row {i}: expected an id (a string or an integer), got {value!r}")
    return str(value)


def _label(value: Any, i: int) -> str | int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(f"row {i}: expected a class name or index as label, got {value!r}")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value
