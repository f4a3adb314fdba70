"""Schemas of ingest jobs: large raw uploads encoded / decoded in the background."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict


class JobError(BaseModel):
    """An item the job refused: its position in the upload, its name (external id) and why."""

    index: int
    item: str
    reason: str


class JobRead(BaseModel):
    """An ingest job. ``done`` of ``total`` items handled (stored, skipped as already known, or refused);
    ``errors``: the first refused items (``n_errors`` counts them all); ``reason``: why a failed job
    stopped (the items it stored before stay, each whole)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    kind: Literal["texts", "images"]
    status: Literal["queued", "running", "succeeded", "failed"]
    total: int
    done: int
    progress: float
    inserted: int
    skipped: int
    ground_truth_added: int
    n_errors: int
    errors: list[JobError]
    reason: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobPage(BaseModel):
    items: list[JobRead]
