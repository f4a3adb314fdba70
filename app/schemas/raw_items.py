"""Schemas of raw items: texts sent as JSON, and texts read back."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tbal.encoders.base import MAX_TEXT_CHARS


class TextItemCreate(BaseModel):
    """One text item: its id, the string (1..MAX_TEXT_CHARS characters, not blank) and optional ground
    truth (a class index or name; for simulations and audits only)."""

    model_config = ConfigDict(extra="forbid")

    external_id: str = Field(min_length=1, max_length=255)
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    ground_truth: int | str | None = None


class TextItemsCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[TextItemCreate] = Field(min_length=1)


class TextRead(BaseModel):
    id: int
    external_id: str
    text: str


class TextPage(BaseModel):
    items: list[TextRead]
    next_after_id: int | None
