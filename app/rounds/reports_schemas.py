"""What a round says about its own inputs and model: the human labels to review (AUM) and the evaluation
of its classifier on the validation set."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RoundRef(BaseModel):
    """Which round (and model version) a report is about. (Not the round's report itself: that is
    :class:`tbal.reports.RoundReport`, the one typed report every reader parses.)"""

    project_id: int
    round_id: int
    round_index: int
    model_version: str | None


class LabelReviewItem(BaseModel):
    rank: int = Field(description="1 for the lowest AUM of the round")
    item_id: int
    external_id: str | None = Field(description="null when the item was deleted since the round")
    label: str | None = Field(description="the item's human label now (null when it has none any more)")
    round_label: str = Field(description="the human label the round trained on (argmax of a soft label)")
    predicted: str = Field(description="the round's classifier's class for the item")
    aum: float = Field(
        description="area under the margin: mean over epochs of logit[label] − max other logit; a low or "
        "negative value means the model learned this label late or never: probably wrong"
    )


class LabelReviewPage(RoundRef):
    training_labels: int = Field(description="human training labels the round trained on")
    fraction: float = Field(description="review budget: share of training labels listed at least")
    below_zero: int = Field(description="training labels with AUM < 0 (always listed)")
    flagged: int = Field(description="labels the round flagged: max(below_zero, ⌈fraction · training⌉)")
    stored: int = Field(description="flagged labels stored with the round (at most 1000), lowest AUM first")
    items: list[LabelReviewItem]
    next_after_rank: int | None = Field(description="pass as after_rank for the next page; null at the end")


class EvaluationRead(RoundRef):
    source: str = Field(description="'validation': the round's human validation labels (never trained on)")
    n: int = Field(description="validation points evaluated")
    accuracy: float | None
    ece: float | None = Field(description="expected calibration error of the top softmax probability")
    ece_bins: int = Field(description="equal-width bins of the ECE")
    nll: float | None = Field(description="mean −log p[y] (probabilities clipped at 1e-12)")
    human_cross_entropy: float | None = Field(
        description="mean −Σ_k h_k log p_k against the humans' label distributions h (one-hot where a label "
        "is hard); null when no validation label is a distribution"
    )
    human_distributions: int = Field(description="validation labels given as a distribution")
    second_best_accuracy: float | None = Field(
        default=None,
        description="share of items whose second most probable class is the humans' second choice (items "
        "with a strict human top two, 3+ classes)",
    )
    second_best_items: int | None = None
