"""Item schemas: JSON ingestion of small batches (the binary upload takes .npy/.npz bodies)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.text import MAX_BATCH, ClassRef, ExternalId


class ItemCreate(BaseModel):
    """One item: ``features`` (d floats) for a feature project, ``image`` (nested lists of 0..255 integers,
    H×W or H×W×C) for an image project; optional ``ground_truth`` (for simulations and audits only)."""

    model_config = ConfigDict(extra="forbid")

    external_id: ExternalId
    # float | int: numbers are kept as parsed (list[float] made a new float object per value: 4x the
    # memory of a large JSON body)
    features: list[float | int] | None = None
    image: list[Any] | None = None
    ground_truth: ClassRef | None = None

    @model_validator(mode="after")
    def _one_payload(self) -> ItemCreate:
        if (self.features is None) == (self.image is None):
            raise ValueError("give exactly one of 'features' or 'image'")
        return self


class ItemsCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[ItemCreate] = Field(min_length=1, max_length=MAX_BATCH)


class IngestResult(BaseModel):
    received: int
    inserted: int = Field(description="new items (external ids not seen before in this project)")
    skipped: int = Field(description="items whose external id already existed (left unchanged)")
    ground_truth_added: int


class ItemRead(BaseModel):
    id: int
    external_id: str
    role: str
    has_ground_truth: bool
    human_label: int | None
    auto_label: int | None
    created_at: datetime


class ItemPage(BaseModel):
    items: list[ItemRead]
    next_after_id: int | None
