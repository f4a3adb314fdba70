"""Round schemas: status, stage and progress while it runs, metrics and model version when done."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

LABEL_REVIEW_COLUMNS = ("item_id", "aum", "label", "predicted")
"""Per-label columns of metrics["label_review"]: up to 1000 entries each, served by the label-review
endpoint and left out of round responses, which list many rounds at once."""


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
            "items), validation_labels, validation_removed, validation_left (validation items after the "
            "removals, labeled or queued), validation_queued (validation top-ups queued from the pool "
            "under validation_floor, and the items drawn inside the stratum under targeted_validation), "
            "training_labels, validation_labels_trained (validation labels the classifier also trained on: "
            "those outside the stratum, with train_outside_stratum), human_labels, queries (training), "
            "audit_sampled, "
            "thresholds (per class: threshold, estimated_error, error_bound, n_points, auto_labeled; null "
            "where a class is not auto-labeled), pooled_estimated_error, pooled_error_bound (with "
            "finite_pool, the bound on the error of the round's auto-labels themselves), delta_used, "
            "epsilon, delta, bound, guarantee, rounds_total (δ is split over them), true_error (round / "
            "total: share of wrong auto-labels among those with ground truth, null when none), timings "
            "(seconds per stage), seed, input_scale, evaluation (the classifier on the validation set; "
            "also GET /rounds/{id}/evaluation), label_review (counts only: the labels themselves are at "
            "GET /projects/{id}/label-review)"
        )
    )
    model_version: str | None
    error: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @field_validator("metrics")
    @classmethod
    def _review_counts_only(cls, metrics: dict[str, Any] | None) -> dict[str, Any] | None:
        review = (metrics or {}).get("label_review")
        if metrics is None or not isinstance(review, dict):
            return metrics
        counts = {k: v for k, v in review.items() if k not in LABEL_REVIEW_COLUMNS}
        return {**metrics, "label_review": counts}  # a copy: the ORM row's dict stays as it is


class RoundPage(BaseModel):
    items: list[RoundRead]
    next_after_id: int | None
