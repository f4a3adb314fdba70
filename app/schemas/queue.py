"""Queue schemas: the items the service wants humans to label next."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class QueueItem(BaseModel):
    query_id: int
    item_id: int
    external_id: str
    purpose: Literal["validation", "training", "audit"]
    round_id: int | None
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
