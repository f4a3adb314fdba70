"""Auto-label schemas."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class AutoLabelRead(BaseModel):
    id: int
    item_id: int
    external_id: str
    round_id: int
    label: int
    class_name: str
    confidence: float
    created_at: datetime


class AutoLabelPage(BaseModel):
    items: list[AutoLabelRead]
    next_after_id: int | None
