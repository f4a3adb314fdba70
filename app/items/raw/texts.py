"""Texts into text projects: each string is encoded by the project's encoder into a float32 feature vector
stored in ``items.data`` exactly as a feature project's (rounds, predictions and exports treat a text
project as a feature project); the string itself goes to ``item_texts`` in the same transaction.

:func:`ingest_texts` is the synchronous way (every text checked first, then encoded and written in one
transaction: all or nothing). Background jobs (:mod:`app.items.jobs_run`) use the same pieces item by item:
:func:`check_text_item`, :func:`encode_items` (on the jobs' worker processes for a cheap encoder) and
:func:`write_texts`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from app.db.models import Project
from app.errors import Invalid
from app.items import repository as items_repo
from app.items import texts_repository as texts_repo
from app.items.arrays import layout_of
from app.items.processes import FeatureSizeError, encode_rows, features, in_processes, joined, map_slices
from app.items.raw.checks import check_id, require_kind, upload_result
from app.items.raw.encoders import text_encoder
from app.items.schemas import IngestResult
from app.items.service import _check_unique, _store
from app.projects.classes import class_index
from tbal.encoders import TextEncoder, text_problem
from tbal.errors import DataError
from tbal.text_files import TextRecords, read_text_records

Label = str | int | None


def read_text_file(
    path: Path, *, fmt: str | None, text_column: str, id_column: str | None, label_column: str | None
) -> TextRecords:
    """A JSON list, JSONL or CSV file of texts (see :mod:`tbal.text_files`); a 422 on ``file`` for one
    that cannot be read."""
    try:
        return read_text_records(
            path.read_bytes(),
            fmt=fmt,
            text_column=text_column,
            id_column=id_column,
            label_column=label_column,
        )
    except DataError as exc:
        raise Invalid("file", str(exc)) from exc


def record_ids(records: TextRecords, id_prefix: str) -> list[str]:
    """The records' external ids: their id column, else ``<id_prefix><row>``."""
    return list(records.ids) if records.ids is not None else [f"{id_prefix}{i}" for i in range(len(records))]


def ingest_text_file(
    session: Session,
    project: Project,
    path: Path,
    *,
    fmt: str | None,
    text_column: str,
    id_column: str | None,
    label_column: str | None,
    id_prefix: str,
    chunk_rows: int,
    device: str = "cpu",
) -> IngestResult:
    """A JSON list, JSONL or CSV file of texts (see :mod:`tbal.text_files`) into a text project."""
    require_kind(project, "text")
    records = read_text_file(
        path, fmt=fmt, text_column=text_column, id_column=id_column, label_column=label_column
    )
    ids = record_ids(records, id_prefix)
    return ingest_texts(
        session,
        project,
        ids,
        records.texts,
        records.labels,
        chunk_rows=chunk_rows,
        device=device,
        end_reads=True,
    )


def ingest_texts(
    session: Session,
    project: Project,
    external_ids: Sequence[str],
    texts: Sequence[str],
    labels: Sequence[Label] | None = None,
    *,
    chunk_rows: int = 5_000,
    device: str = "cpu",
    end_reads: bool = False,
) -> IngestResult:
    """Store texts (and their features) as items of a text project; ``labels``: ground truth (class
    names or indices, None for unknown), for simulations and audits only. Checks everything, encodes the
    new ones (ids not yet in the project), writes items and texts in one transaction and commits.
    ``end_reads``: commit the session's reads before encoding (a caller with nothing of its own pending)."""
    require_kind(project, "text")
    check_text_batch(external_ids, texts, labels)
    truth_all = [
        check_text_item(project, i, external_ids[i], texts[i], labels[i] if labels is not None else None)
        for i in range(len(texts))
    ]
    known = items_repo.ids_by_external(session, project.id, external_ids)
    new = [i for i, ext in enumerate(external_ids) if ext not in known]
    if end_reads:
        session.commit()  # no transaction open while encoding (SQLite: BEGIN IMMEDIATE blocks the others)
    encoder = text_encoder(project.settings, device=device)
    result = store_texts(
        session,
        project,
        encoder,
        [str(external_ids[i]) for i in new],
        [texts[i] for i in new],
        np.array([truth_all[i] for i in new], dtype=np.int64),
        chunk_rows,
    )
    return upload_result(len(texts), result)


def check_text_batch(
    external_ids: Sequence[str], texts: Sequence[str], labels: Sequence[Label] | None
) -> None:
    """A 422 unless ids, texts (and labels) line up, there is at least one text and no id repeats."""
    if len(external_ids) != len(texts) or (labels is not None and len(labels) != len(texts)):
        raise Invalid("texts", "expected as many ids (and labels) as texts")
    if not texts:
        raise Invalid("texts", "no text items")
    _check_unique(list(external_ids), "texts", per_item=True)


def check_text_item(project: Project, i: int, external_id: str, text: str, label: Label) -> int:
    """Check text item ``i`` (its id, its text, its ground truth) and return its class index (-1: none);
    a 422 on ``texts.<i>.<what>`` for a problem."""
    check_id(external_id, f"texts.{i}.external_id")
    problem = text_problem(text)
    if problem:
        raise Invalid(f"texts.{i}.text", problem)
    if label is None:
        return -1
    return class_index(project.classes, label, f"texts.{i}.ground_truth")


def store_texts(
    session: Session,
    project: Project,
    encoder: TextEncoder,
    ids: list[str],
    texts: list[str],
    truth: np.ndarray,
    chunk_rows: int,
) -> IngestResult:
    """Encode checked texts of new items and write items, texts and ground truth in the session's
    transaction, then commit (a 422 when the encoder refuses them or gives the wrong size)."""
    X = encode_checked(layout_of(project).shape, encoder, texts)
    return write_texts(session, project, ids, texts, X, truth, chunk_rows)


def encode_checked(shape: tuple[int, ...], encoder: TextEncoder, texts: list[str]) -> np.ndarray:
    """Checked texts -> their (n, d) features; a 422 when the encoder refuses them or gives another size
    than ``shape``, the project's (no database)."""
    try:
        return features(encoder, shape, texts)
    except FeatureSizeError as exc:
        raise Invalid("settings.encoder", str(exc)) from exc
    except (DataError, ValueError) as exc:
        raise Invalid("texts", str(exc)) from exc


def encode_items(
    texts: list[str], encoder: TextEncoder, shape: tuple[int, ...], processes: int = 0
) -> tuple[np.ndarray, list[str | None]]:
    """Checked texts -> (the features of those the encoder takes, each text's problem: None when
    encoded); only the texts the encoder refuses get a problem (:func:`app.items.processes.encode_rows`).
    On the ingest jobs' worker processes when ``processes`` is 2 or more, the encoder runs there
    (:data:`app.items.processes.PROCESS_ENCODERS`) and their pool runs; else here. The same features
    either way (an ingest job calls it on its encoding thread: no database). A 422 on
    ``settings.encoder`` when the features are not of ``shape``."""
    try:
        if processes >= 2 and texts and in_processes(encoder.config):
            parts = map_slices(processes, encode_rows, texts, encoder.config, shape)
            if parts is not None:
                return joined(parts)
        return encode_rows(texts, encoder, shape)
    except FeatureSizeError as exc:
        raise Invalid("settings.encoder", str(exc)) from exc


def write_texts(
    session: Session,
    project: Project,
    ids: list[str],
    texts: list[str],
    X: np.ndarray,
    truth: np.ndarray,
    chunk_rows: int,
) -> IngestResult:
    """Write new text items (their features ``X``), their strings and ground truth in the session's
    transaction (with whatever the caller wrote in it), then commit."""
    texts_repo.add_texts(session, project.id, ids, texts)
    return _store(session, project, layout_of(project), X, ids, truth, chunk_rows)


def encode_texts(project: Project, texts: Sequence[str], *, device: str = "cpu") -> np.ndarray:
    """(n,) texts -> (n, d) float32 features by the project's encoder (for predictions; nothing stored);
    422 on ``texts.<i>`` for a text that cannot be encoded."""
    require_kind(project, "text")
    for i, t in enumerate(texts):
        problem = text_problem(t)
        if problem:
            raise Invalid(f"texts.{i}", problem)
    return text_encoder(project.settings, device=device).encode(list(texts))
