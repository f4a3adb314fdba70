"""Round schemas: status, stage and progress while it runs, metrics and model version when done."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class RoundRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    index: int
    status: str
    stage: str | None
    progress: float
    n_queries: int
    metrics: dict[str, Any] | None
    model_version: str | None
    error: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RoundPage(BaseModel):
    items: list[RoundRead]
    next_after_id: int | None
