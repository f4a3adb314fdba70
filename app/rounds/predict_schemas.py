"""Predict schemas: new items scored by the latest model version."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.text import MAX_BATCH


class PredictItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    features: list[float | int] | None = None  # numbers as parsed (see ItemCreate)
    image: list[Any] | None = None

    @model_validator(mode="after")
    def _one_payload(self) -> PredictItem:
        if (self.features is None) == (self.image is None):
            raise ValueError("give exactly one of 'features' or 'image'")
        return self


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[PredictItem] = Field(min_length=1, max_length=MAX_BATCH)


class Prediction(BaseModel):
    label: int
    class_name: str
    confidence: float
    clears_threshold: bool


class PredictResponse(BaseModel):
    model_version: str
    round_id: int
    predictions: list[Prediction]
