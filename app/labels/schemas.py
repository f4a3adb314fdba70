"""Human-label schemas: a class, a distribution over the classes, or votes per annotator."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.text import MAX_BATCH, ClassRef, ExternalId, Name, Source


class HumanLabelCreate(BaseModel):
    """A label for one item, named by ``item_id`` or ``external_id``: exactly one of ``label`` (a class),
    ``distribution`` (K probabilities summing to 1) or ``votes`` ({annotator: class}, aggregated into a
    distribution). The hard label is the argmax (lowest class index on ties)."""

    model_config = ConfigDict(extra="forbid")

    item_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    external_id: ExternalId | None = None
    label: ClassRef | None = None
    distribution: list[float] | None = Field(default=None, max_length=10_000)
    votes: dict[Name, ClassRef] | None = Field(default=None, max_length=10_000)

    @model_validator(mode="after")
    def _exactly_one(self) -> HumanLabelCreate:
        if (self.item_id is None) == (self.external_id is None):
            raise ValueError("give exactly one of 'item_id' or 'external_id'")
        given = [name for name in ("label", "distribution", "votes") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of 'label', 'distribution' or 'votes', got {given or 'none'}")
        return self


class HumanLabelsCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    labels: list[HumanLabelCreate] = Field(min_length=1, max_length=MAX_BATCH)
    source: Source = "api"


class LabelsResult(BaseModel):
    received: int
    created: int
    updated: int
    validation: int = Field(description="labels of validation items")
    training: int = Field(description="labels of training items (asked for or not)")
    answered_queries: int


class HumanLabelRead(BaseModel):
    id: int
    item_id: int
    external_id: str
    role: str
    label: int
    class_name: str
    distribution: list[float] | None
    votes: dict[str, int] | None
    source: str
    created_at: datetime
    updated_at: datetime


class HumanLabelPage(BaseModel):
    items: list[HumanLabelRead]
    next_after_id: int | None
