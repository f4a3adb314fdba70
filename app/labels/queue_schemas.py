"""Queue schemas: the items the service wants humans to label next."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class QueueItem(BaseModel):
    query_id: int
    item_id: int
    external_id: str
    purpose: Literal["validation", "training", "audit"] = Field(
        description="validation: joins the validation set, never trains (the set drawn at the start, "
        "round_id null; a round's top-up under validation_floor; or, in the round that fixes the stratum, "
        "the items drawn inside it under targeted_validation); training: trains the next round; "
        "audit: checks a round's auto-labels (audit_size)"
    )
    round_id: int | None = Field(description="the round that asked for it; null for the initial draw")
    data: list[Any] | None = None


class QueuePage(BaseModel):
    items: list[QueueItem]
    next_after_id: int | None
    open_validation: int
    open_training: int


class SimulateResult(BaseModel):
    answered: int
    validation: int
    training: int
