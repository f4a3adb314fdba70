"""Exports of every labeled item: human labels (``human-annotated: yes``) first, then the auto-labels
of items without a human label. JSONL, CSV, or a SageMaker Ground Truth style output manifest, one
line per item; streamed in keyset pages, each read in its own short transaction."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Project
from app.rounds import auto_labels_repository as auto_repo

ExportFormat = Literal["jsonl", "csv", "manifest"]
PAGE = 5_000
BLOCK_LINES = 1_000
CSV_FIELDS = [
    "item_id",
    "external_id",
    "label",
    "class_name",
    "confidence",
    "source",
    "round_id",
    "created_at",
]
MEDIA_TYPES: dict[str, str] = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv",
    "manifest": "application/x-ndjson",
}


def export_records(factory: sessionmaker[Session], project_id: int) -> Iterator[dict[str, Any]]:
    """Records: item_id, external_id, label, confidence, source ('human'|'auto'), round_id, created_at."""
    after = 0
    while True:
        with factory() as session:
            rows = auto_repo.export_human_page(session, project_id, after_id=after, limit=PAGE)
        for r in rows:
            confidence = max(r.distribution) if r.distribution else 1.0
            yield {
                "item_id": r.item_id,
                "external_id": r.external_id,
                "label": r.label,
                "confidence": confidence,
                "source": "human",
                "round_id": None,
                "created_at": r.updated_at,
            }
        if len(rows) < PAGE:
            break
        after = rows[-1].id
    after = 0
    while True:
        with factory() as session:
            rows = auto_repo.export_auto_page(session, project_id, after_id=after, limit=PAGE)
        for r in rows:
            yield {
                "item_id": r.item_id,
                "external_id": r.external_id,
                "label": r.label,
                "confidence": r.confidence,
                "source": "auto",
                "round_id": r.round_id,
                "created_at": r.created_at,
            }
        if len(rows) < PAGE:
            break
        after = rows[-1].id


def render(
    records: Iterator[dict[str, Any]], project: Project, fmt: ExportFormat, job_name: str
) -> Iterator[str]:
    """The export's text in blocks of about ``BLOCK_LINES`` lines (one network write per block)."""
    block: list[str] = [_csv_line(CSV_FIELDS)] if fmt == "csv" else []
    for record in records:
        block.append(_line(record, project, fmt, job_name))
        if len(block) >= BLOCK_LINES:
            yield "".join(block)
            block = []
    if block:
        yield "".join(block)


def _line(r: dict[str, Any], project: Project, fmt: ExportFormat, job_name: str) -> str:
    classes = project.classes
    if fmt == "csv":
        round_id = "" if r["round_id"] is None else r["round_id"]
        return _csv_line(
            [
                r["item_id"],
                r["external_id"],
                r["label"],
                classes[r["label"]],
                r["confidence"],
                r["source"],
                round_id,
                _iso(r["created_at"]),
            ]
        )
    if fmt == "jsonl":
        return (
            json.dumps({**r, "class_name": classes[r["label"]], "created_at": _iso(r["created_at"])}) + "\n"
        )
    kind = (
        "groundtruth/image-classification"
        if project.data_kind == "image"
        else "groundtruth/text-classification"
    )
    return json.dumps(_manifest_line(r, classes, job_name, kind)) + "\n"


def _manifest_line(r: dict[str, Any], classes: list[str], job: str, kind: str) -> dict[str, Any]:
    """One line of a SageMaker Ground Truth style output manifest (image/text classification)."""
    ref = r["external_id"]
    line: dict[str, Any] = {"source-ref": ref} if "://" in ref else {"external_id": ref}
    line[job] = r["label"]
    line[f"{job}-metadata"] = {
        "class-name": classes[r["label"]],
        "confidence": round(float(r["confidence"]), 6),
        "human-annotated": "yes" if r["source"] == "human" else "no",
        "creation-date": _iso(r["created_at"]),
        "job-name": f"labeling-job/{job}",
        "type": kind,
    }
    return line


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def _csv_line(values: list[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()
