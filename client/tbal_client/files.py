"""The local files of the client verbs (:mod:`tbal_client.cli`): item arrays (.npy / .npz) and the shape
a project takes from them, labels to post (CSV with external_id / item_id, label and an optional annotator
column; or JSONL of API label objects), and the JSONL / CSV they write. Bad input raises
:class:`CommandError` naming the file, the line and what was expected.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tbal_client.types import AutoLabel, Label


class CommandError(Exception):
    """Bad input to a verb (exit code 2); the message names what was expected and what was got."""


def _load_arrays(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise CommandError(f"file not found: {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CommandError(f"{path}: expected a .npy or .npz file: {exc}") from exc
    if isinstance(loaded, np.ndarray):
        return {"X": loaded}
    with loaded:
        return {name: loaded[name] for name in loaded.files}


def _pick(
    arrays: dict[str, np.ndarray], split: str | None, path: Path
) -> tuple[np.ndarray, np.ndarray | None]:
    for x_key, y_key in [(f"X_{split}", f"y_{split}")] if split else [("X", "y"), ("X_train", "y_train")]:
        if x_key in arrays:
            return arrays[x_key], arrays.get(y_key)
    wanted = f"X_{split}" if split else "X (or X_train)"
    raise CommandError(f"{path}: expected an array {wanted}, got {sorted(arrays)}")


def read_items(path: Path, split: str | None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    arrays = _load_arrays(path)
    X, y = _pick(arrays, split, path)
    external_ids = arrays.get("external_ids")
    if y is not None and y.dtype.kind not in "iu":
        raise CommandError(f"{path}: expected integer class indices in y, got dtype {y.dtype}")
    return X, external_ids, y


def shape_from_data(path: Path) -> tuple[str, list[int], list[str] | None]:
    arrays = _load_arrays(path)
    X, y = _pick(arrays, None, path)
    if X.ndim < 2:
        raise CommandError(f"{path}: expected X of shape (n, d) or (n, H, W[, C]), got {X.shape}")
    kind = "image" if X.dtype == np.uint8 and X.ndim in (3, 4) else "features"
    if kind == "features" and X.ndim != 2:
        raise CommandError(f"{path}: expected uint8 images or (n, d) features, got {X.dtype} {X.shape}")
    classes: list[str] | None = None
    if "class_names" in arrays:
        classes = [str(c) for c in arrays["class_names"].tolist()]
    elif y is not None and y.size:
        classes = [str(c) for c in range(int(np.max(y)) + 1)]
    return kind, [int(s) for s in X.shape[1:]], classes


def read_labels(path: Path, *, by_index: bool) -> list[Label | dict[str, Any]]:
    if not path.is_file():
        raise CommandError(f"file not found: {path}")
    if path.suffix in (".jsonl", ".json", ".ndjson"):
        rows: list[Label | dict[str, Any]] = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(dict(json.loads(line)))
                except (json.JSONDecodeError, TypeError, ValueError) as exc:
                    raise CommandError(f"{path}:{number}: expected a JSON object per line: {exc}") from exc
        return rows
    return _labels_from_csv(path, by_index=by_index)


def _labels_from_csv(path: Path, *, by_index: bool) -> list[Label | dict[str, Any]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields = set(reader.fieldnames or [])
        key = "external_id" if "external_id" in fields else "item_id" if "item_id" in fields else None
        if key is None or "label" not in fields:
            raise CommandError(
                f"{path}: expected a CSV header with external_id (or item_id) and label, got {sorted(fields)}"
            )
        votes: dict[str, dict[str, int | str]] = {}
        for number, row in enumerate(reader, start=2):
            ref, value = (row.get(key) or "").strip(), (row.get("label") or "").strip()
            if not ref or not value:
                raise CommandError(f"{path}:{number}: empty {key} or label")
            cls: int | str = value
            if by_index:
                if not value.isdigit():
                    raise CommandError(f"{path}:{number}: --by-index expects an integer label, got {value!r}")
                cls = int(value)
            annotator = (row.get("annotator") or "").strip() or "_"
            votes.setdefault(ref, {})[annotator] = cls
    labels: list[Label | dict[str, Any]] = []
    for ref, by_annotator in votes.items():
        ident: dict[str, Any] = {"external_id": ref} if key == "external_id" else {"item_id": int(ref)}
        if list(by_annotator) == ["_"]:
            labels.append(Label(**ident, label=by_annotator["_"]))
        else:
            labels.append(Label(**ident, votes=by_annotator))
    return labels


def write_jsonl(out: Path | None, rows: Iterator[dict[str, Any]], limit: int | None) -> int:
    stream = out.open("w") if out else sys.stdout
    written = 0
    try:
        for row in rows:
            if limit is not None and written >= limit:
                break
            stream.write(json.dumps(row) + "\n")
            written += 1
    finally:
        if out:
            stream.close()
    return written


def write_csv(out: Path | None, rows: Iterator[AutoLabel]) -> int:
    stream = out.open("w", newline="") if out else sys.stdout
    written = 0
    try:
        writer = csv.writer(stream)
        writer.writerow(["external_id", "item_id", "label", "class_name", "confidence", "round_id"])
        for a in rows:
            writer.writerow(
                [a.external_id, a.item_id, a.label, a.class_name, f"{a.confidence:.6g}", a.round_id]
            )
            written += 1
    finally:
        if out:
            stream.close()
    return written
