"""Round schemas: status, stage and progress while it runs, metrics and model version when done."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RoundRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    index: int
    status: str
    stage: str | None
    progress: float
    n_queries: int
    metrics: dict[str, Any] | None = Field(
        description=(
            "when succeeded: pool_size (unlabeled items the round saw), auto_labeled (this round), "
            "auto_labeled_total, coverage (auto_labeled / pool_size), coverage_total (all auto-labels / all "
            "items), validation_labels, validation_removed, training_labels, human_labels, queries, "
            "thresholds (per class: threshold, estimated_error, error_bound, n_points, auto_labeled; null "
            "where a class is not auto-labeled), pooled_estimated_error, pooled_error_bound, delta_used, "
            "epsilon, delta, bound, guarantee, rounds_total (δ is split over them), true_error (round / "
            "total: share of wrong auto-labels among those with ground truth, null when none), timings "
            "(seconds per stage), seed, input_scale"
        )
    )
    model_version: str | None
    error: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RoundPage(BaseModel):
    items: list[RoundRead]
    next_after_id: int | None
