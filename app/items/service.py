"""Ingesting items: JSON batches and binary uploads (.npy/.npz), idempotent on ``external_id``.

A request is written in one transaction (all of it or nothing). Rows go to the database in chunks
through a staging table (binary COPY on PostgreSQL), so a large upload is never held as several copies:
the uploaded file is memory-mapped and only one chunk is converted to bytes at a time. An upload that
adds items draws the validation and seed sets in its transaction while they are open
(app.labels.queue_service).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import Project
from app.errors import Invalid
from app.items import repository as items_repo
from app.items.arrays import (
    Layout,
    check_array,
    check_shape,
    json_batch,
    layout_of,
    rows_per_chunk,
    to_storage,
)
from app.items.npy_files import ArrayHeader, open_npy, open_npz, sniff
from app.items.schemas import IngestResult, ItemsCreate
from app.labels.queue_service import redraw_open_sets
from app.projects.classes import class_index
from app.text import MAX_EXTERNAL_ID, MAX_ID_PREFIX, check_text, text_problem

UPLOAD_ARRAYS = ("X", "external_ids", "y")
STORE_CHUNK_BYTES = 32 * 1024**2
"""At most this many bytes of item data are converted and written at a time (and ``chunk_rows`` rows)."""


def ingest_json(session: Session, project: Project, body: ItemsCreate, *, chunk_rows: int) -> IngestResult:
    layout = layout_of(project)
    for i, item in enumerate(body.items):
        if item.features is None and layout.kind == "features":
            raise Invalid(f"items.{i}.features", "this project takes feature vectors: give 'features'")
        if item.image is None and layout.kind == "image":
            raise Invalid(f"items.{i}.image", "this project takes images: give 'image'")
    external_ids = [item.external_id for item in body.items]
    _check_unique(external_ids, "items", per_item=True)
    X = json_batch(
        layout, [item.features if layout.kind == "features" else item.image for item in body.items], "items"
    )
    truth = np.full(len(body.items), -1, dtype=np.int64)
    for i, item in enumerate(body.items):
        if item.ground_truth is not None:
            truth[i] = class_index(project.classes, item.ground_truth, f"items.{i}.ground_truth")
    return _store(session, project, layout, X, external_ids, truth, chunk_rows)


def ingest_file(
    session: Session,
    project: Project,
    path: Path,
    *,
    id_prefix: str,
    chunk_rows: int,
    max_inflated_bytes: int,
) -> IngestResult:
    """Ingest an uploaded file: a .npy array X, or an .npz with ``X`` and optional ``external_ids``
    (strings) and ``y`` (ground-truth class indices, -1 for unknown). Without ``external_ids``, row i
    gets the id ``<id_prefix><i>``, so re-sending the same file adds nothing twice. Each array's header
    is checked before its data are read (see :mod:`app.items.npy_files`)."""
    layout = layout_of(project)
    check_text(id_prefix, "id_prefix", min_length=0, max_length=MAX_ID_PREFIX)

    def check_header(field: str, header: ArrayHeader) -> None:
        name = field.removeprefix("file.")
        if name not in UPLOAD_ARRAYS:
            raise Invalid(field, "unexpected array; an .npz holds X, external_ids (optional), y (optional)")
        if name == "X":
            check_shape(layout, header.shape, header.dtype, "file.X")
        elif len(header.shape) != 1:
            raise Invalid(field, f"expected one value per row of X, got shape {header.shape}")

    if sniff(path) == "npy":
        arrays = {"X": open_npy(path, field="file.X", check=check_header)}
    else:
        arrays = open_npz(path, max_inflated_bytes=max_inflated_bytes, check=check_header)
        if "X" not in arrays:
            raise Invalid("file.X", "the .npz has no array named X")
    X = arrays["X"]
    check_array(layout, X, "file.X")
    n = X.shape[0]
    external_ids = _external_ids(arrays.get("external_ids"), n, id_prefix)
    truth = _truth(arrays.get("y"), n, len(project.classes))
    return _store(session, project, layout, X, external_ids, truth, chunk_rows)


@dataclass(frozen=True)
class _GeneratedIds:
    """The ids ``<prefix><i>`` of rows without external ids, made one chunk at a time (a million
    strings are never held at once, and they need no uniqueness check)."""

    prefix: str
    n: int

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, rows: slice) -> list[str]:
        return [f"{self.prefix}{i}" for i in range(*rows.indices(self.n))]


def _external_ids(raw: np.ndarray | None, n: int, prefix: str) -> list[str] | _GeneratedIds:
    if raw is None:
        return _GeneratedIds(prefix, n)
    if raw.shape != (n,):
        raise Invalid("file.external_ids", f"expected shape ({n},) like X's rows, got {raw.shape}")
    if raw.dtype.kind == "U":
        # numpy keeps any 32-bit value in a unicode array; past U+10FFFF, tolist() is a SystemError
        codes = np.ascontiguousarray(raw).view(np.dtype("u4").newbyteorder(raw.dtype.byteorder))
        bad = np.flatnonzero(codes > 0x10FFFF)
        if bad.size:
            row = int(bad[0]) // (raw.dtype.itemsize // 4)
            raise Invalid("file.external_ids", f"row {row}: not Unicode (a code point beyond U+10FFFF)")
        ids = [str(s) for s in raw.tolist()]
    elif raw.dtype.kind == "S":
        try:
            ids = [bytes(s).decode("utf-8") for s in raw.tolist()]
        except UnicodeDecodeError as exc:
            raise Invalid("file.external_ids", "expected UTF-8 strings") from exc
    elif raw.dtype.kind in "iu":
        ids = [str(int(s)) for s in raw.tolist()]
    else:
        raise Invalid("file.external_ids", f"expected strings, got dtype {raw.dtype}")
    for i, ext in enumerate(ids):
        problem = text_problem(ext, max_length=MAX_EXTERNAL_ID)
        if problem is not None:
            raise Invalid("file.external_ids", f"row {i}: external id {problem}")
    _check_unique(ids, "file.external_ids", per_item=False)
    return ids


def _truth(raw: np.ndarray | None, n: int, k: int) -> np.ndarray:
    if raw is None:
        return np.full(n, -1, dtype=np.int64)
    if raw.shape != (n,) or raw.dtype.kind not in "iu":
        raise Invalid(
            "file.y", f"expected integer class indices of shape ({n},), got {raw.dtype} {raw.shape}"
        )
    y = np.asarray(raw, dtype=np.int64)
    bad = (y < -1) | (y >= k)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise Invalid(
            "file.y", f"row {row}: unknown class {int(y[row])}; expected 0..{k - 1} (or -1: unknown)"
        )
    return y


def _check_unique(external_ids: Sequence[str], field: str, *, per_item: bool) -> None:
    seen: dict[str, int] = {}
    for i, ext in enumerate(external_ids):
        if ext in seen:
            where = f"{field}.{i}.external_id" if per_item else field
            raise Invalid(where, f"duplicate external id {ext!r} in this batch (rows {seen[ext]} and {i})")
        seen[ext] = i


def _store(
    session: Session,
    project: Project,
    layout: Layout,
    X: np.ndarray,
    external_ids: list[str] | _GeneratedIds,
    truth: np.ndarray,
    chunk_rows: int,
) -> IngestResult:
    """Write the rows chunk by chunk. PostgreSQL: straight binary COPY into ``items`` while no external
    id of the request exists yet (the common case of new items), else through the staging table, which
    skips the existing ones (re-sent files). SQLite: one ``executemany`` per chunk that skips them.
    The same rows and ids every way."""
    now = utcnow()
    inserted = truth_added = 0
    copy_ok = fast = items_repo.can_copy(session)
    staged = False
    step = rows_per_chunk(layout, STORE_CHUNK_BYTES, most=chunk_rows)  # wide items: fewer rows a chunk
    for start in range(0, len(external_ids), step):
        stop = min(start + step, len(external_ids))
        block = to_storage(layout, X[start:stop])
        ids = external_ids[start:stop]
        part_truth = truth[start:stop]
        data = block.reshape(stop - start, -1).view(np.uint8)
        done = None
        if not copy_ok:
            done = items_repo.insert_chunk(session, project.id, ids, data, part_truth, now)
        elif fast:
            done = items_repo.copy_chunk(session, project.id, ids, data, part_truth, now)
            fast = done is not None
        if done is None:
            if not staged:
                items_repo.start_ingest(session)
                staged = True
            rows = [
                (start + j, ids[j], block[j].tobytes(), int(t) if t >= 0 else None)
                for j, t in enumerate(part_truth.tolist())
            ]
            done = items_repo.ingest_chunk(session, project.id, rows, now)
        inserted += done[0]
        truth_added += done[1]
    if inserted:
        redraw_open_sets(session, project)  # the pool changed: here, not on the next read
    session.commit()
    n = len(external_ids)
    return IngestResult(received=n, inserted=inserted, skipped=n - inserted, ground_truth_added=truth_added)
