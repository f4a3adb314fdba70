"""What the dashboard's JSON endpoints answer: one project's summary (``/projects/{id}/summary``) and the
projects overview (``/dashboard/projects``). Shares are fractions in [0, 1]; the page shows percentages."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class SummaryProject(BaseModel):
    id: int
    name: str
    classes: list[str]
    data_kind: str
    input_shape: list[int]
    created_at: datetime
    epsilon: float
    delta: float
    bound: str
    guarantee: str
    confidence: str
    model: str
    query_strategy: str
    label_budget: int
    validation_size: int
    batch_size: int
    warnings: list[str] = Field(
        default_factory=list,
        description="what the settings' certificate cannot do, said before any round (too few validation "
        "points to certify anything; tbal.plan.certificate_needs)",
    )


class SummaryCounts(BaseModel):
    items: int
    roles: dict[str, int] = Field(description="items per role: pool, validation, train, removed")
    unlabeled_pool: int = Field(description="pool items with neither a human nor an auto-label")
    unlabeled: int = Field(
        description="items no one has labeled yet: the unlabeled pool and the items waiting in the queue"
    )
    human_labels: int
    validation_labels: int = Field(description="human labels of the current validation set")
    validation_removed: int = Field(description="validation items removed inside auto-labeled regions")
    training_labels: int
    auto_labels: int
    coverage: float = Field(description="auto_labels / items")
    budget_used: int = Field(
        description="training items (asked for or labeled unasked) and validation top-ups "
        "(validation_floor): what label_budget counts"
    )
    budget_labeled: int = Field(
        description="of budget_used, the items humans have labeled (training labels and answered top-ups)"
    )
    budget_queued: int = Field(description="of budget_used, the queries still waiting for a human")
    label_budget: int
    open_validation: int
    open_training: int


class SummaryClass(BaseModel):
    index: int
    name: str
    threshold: float | None = Field(description="of the latest succeeded round; null: not auto-labeled")
    estimated_error: float | None
    error_bound: float | None
    n_points: int | None = Field(description="D_th points above the threshold in the latest round")
    auto_labeled_round: int | None = Field(description="auto-labeled as this class in the latest round")
    auto_labels: int = Field(description="auto-labels of this class, all rounds")
    coverage: float = Field(description="auto-labels of this class / items")
    validation_left: int = Field(description="human validation labels of this class still in the set")
    training_labels: int


class SummaryRound(BaseModel):
    id: int
    index: int
    status: str
    stage: str | None
    progress: float
    n_queries: int
    model_version: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    pool_size: int | None = None
    auto_labeled: int | None = None
    auto_labeled_total: int | None = None
    coverage: float | None = Field(default=None, description="auto-labeled / the round's pool")
    coverage_total: float | None = Field(default=None, description="all auto-labels / all items")
    human_labels: int | None = None
    training_labels: int | None = None
    validation_labels: int | None = None
    validation_labels_trained: int | None = Field(
        default=None,
        description=(
            "validation labels the classifier also trained on (train_outside_stratum); null in older reports"
        ),
    )
    validation_removed: int | None = None
    estimated_error: float | None = None
    error_bound: float | None = None
    error_bound_kind: Literal["pooled", "max over classes"] | None = None
    true_error: float | None = Field(default=None, description="wrong / auto-labels with ground truth")
    true_error_known: int | None = None
    true_error_total: float | None = None
    epsilon: float | None = None
    delta: float | None = None
    delta_round: float | None = Field(
        default=None,
        description="δ_k, the share of δ this round was certified at; 0 = it auto-labels nothing by design "
        "(the final schedule certifies in the last round the label budget allows)",
    )
    delta_schedule: str | None = None
    rounds_planned: int | None = Field(default=None, description="the planned rounds P of the δ schedule")


class ReliabilityBin(BaseModel):
    lo: float
    hi: float
    count: int
    accuracy: float | None
    confidence: float | None


class SummaryReliability(BaseModel):
    round_id: int
    round_index: int
    source: str = Field(description="which points: D_th, the human-labeled points that set the thresholds")
    n: int
    ece: float | None
    bins: list[ReliabilityBin]


class QueueEntry(BaseModel):
    external_id: str
    purpose: str
    round_id: int | None


class RoundState(BaseModel):
    id: int
    index: int
    status: str
    stage: str | None
    progress: float
    started_at: datetime | None


class ProjectSummary(BaseModel):
    project: SummaryProject
    counts: SummaryCounts
    classes: list[SummaryClass]
    classes_round_index: int | None = Field(description="the round the thresholds come from")
    rounds: list[SummaryRound]
    rounds_shown: int
    rounds_total: int
    reliability: SummaryReliability | None
    queue_head: list[QueueEntry]
    active_round: RoundState | None
    query_ms: float = Field(description="time spent building this summary")


class ProjectOverview(BaseModel):
    id: int
    name: str
    data_kind: str
    n_classes: int
    items: int
    auto_labels: int
    human_labels: int
    coverage: float
    rounds: int
    last_round: RoundState | None
    created_at: datetime


class ProjectsOverview(BaseModel):
    items: list[ProjectOverview]
    next_after_id: int | None
