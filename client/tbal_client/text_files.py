"""Reading text items from a file on the client side: a JSON list, JSON Lines, or CSV with a header row.

The client's own copy of :mod:`tbal.text_files` (standard library only, so that ``tbal_client`` installs
with httpx and numpy and nothing of the library): rows are checked here, so that a bad row stops the
upload before anything is sent. ``tests/client/test_client_types.py`` runs both readers on the same files
and fails when they disagree (texts, ids, labels, which rows they refuse).

``read_text_records(data, fmt=..., text_column=..., id_column=..., label_column=...)`` ->
:class:`TextRecords`. Errors are :class:`TextFileError` (a ``ValueError``) naming the row (``row 3: ...``;
rows count from 0, the CSV header not included).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

TEXT_FORMATS = ("json", "jsonl", "csv")
MAX_FIELD_CHARS = 1 << 20
MAX_TEXT_CHARS = 20_000
"""The service's limit on one text (``tbal.encoders.MAX_TEXT_CHARS``)."""


class TextFileError(ValueError):
    """A text file that cannot be uploaded: not UTF-8, not valid JSON/CSV, a missing column, a bad row."""


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


def text_problem(text: Any) -> str | None:
    """Why the service would refuse ``text``, or None when it accepts it."""
    if not isinstance(text, str):
        return f"expected a string, got {type(text).__name__}"
    if not text.strip():
        return "empty text"
    if len(text) > MAX_TEXT_CHARS:
        return f"longer than {MAX_TEXT_CHARS} characters ({len(text)})"
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid Unicode (a lone surrogate such as \\ud800)"
    return None


def read_text_records(
    data: bytes,
    *,
    fmt: str | None = None,
    text_column: str = "text",
    id_column: str | None = None,
    label_column: str | None = None,
) -> TextRecords:
    """Parse a text file's bytes (see the module docstring); raises TextFileError naming the row."""
    if not data.strip():
        raise TextFileError("the file is empty")
    fmt = fmt or sniff_text_format(data)
    if fmt not in TEXT_FORMATS:
        raise TextFileError(f"unknown text format {fmt!r}; valid: {', '.join(TEXT_FORMATS)}")
    content = _decode(data)
    if fmt == "csv":
        rows: list[Any] = _csv_rows(content, text_column, id_column, label_column)
    elif fmt == "json":
        rows = _json_rows(content)
    else:
        rows = _jsonl_rows(content)
    if not rows:
        raise TextFileError("the file holds no text items")
    return _records(rows, text_column, id_column, label_column)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise TextFileError(f"not UTF-8: invalid byte at offset {exc.start} (line {line})") from exc


def _json_rows(content: str) -> list[Any]:
    try:
        rows = json.loads(content)
    except ValueError as exc:
        raise TextFileError(f"not valid JSON: {exc}") from exc
    if not isinstance(rows, list):
        raise TextFileError(f"expected a JSON list of strings or objects, got {type(rows).__name__}")
    return rows


def _jsonl_rows(content: str) -> list[Any]:
    rows = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError as exc:
            raise TextFileError(f"line {number}: not valid JSON: {exc}") from exc
    return rows


def _csv_rows(content: str, text_column: str, id_column: str | None, label_column: str | None) -> list[Any]:
    csv.field_size_limit(MAX_FIELD_CHARS)
    reader = csv.DictReader(io.StringIO(content, newline=""))
    try:
        header = reader.fieldnames or []
        for column in (text_column, id_column, label_column):
            if column is not None and column not in header:
                raise TextFileError(
                    f"the CSV has no column {column!r}; its columns: {', '.join(header) or 'none'}"
                )
        return list(reader)
    except csv.Error as exc:
        raise TextFileError(f"line {reader.line_num}: not valid CSV: {exc}") from exc


def _records(
    rows: list[Any], text_column: str, id_column: str | None, label_column: str | None
) -> TextRecords:
    texts: list[str] = []
    ids: list[str] | None = [] if id_column else None
    labels: list[str | int | None] | None = [] if label_column else None
    for i, row in enumerate(rows):
        if isinstance(row, str):
            if id_column or label_column:
                raise TextFileError(f"row {i}: a plain string has no {id_column or label_column!r} field")
            texts.append(_text(row, i))
            continue
        if not isinstance(row, dict):
            raise TextFileError(f"row {i}: expected a string or an object, got {type(row).__name__}")
        if text_column not in row:
            raise TextFileError(f"row {i}: no field {text_column!r}")
        texts.append(_text(row[text_column], i))
        if ids is not None:
            ids.append(_id(row.get(str(id_column)), i))
        if labels is not None:
            labels.append(_label(row.get(str(label_column)), i))
    return TextRecords(texts, ids, labels)


def _text(value: Any, i: int) -> str:
    problem = text_problem(value)
    if problem:
        raise TextFileError(f"row {i}: {problem}")
    return str(value)


def _id(value: Any, i: int) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "":
        raise TextFileError(f"row {i}: expected an id (a string or an integer), got {value!r}")
    return str(value)


def _label(value: Any, i: int) -> str | int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TextFileError(f"row {i}: expected a class name or index as label, got {value!r}")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value
