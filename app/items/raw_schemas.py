"""Schemas of raw items: texts sent as JSON, and texts read back."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.text import ExternalId, StorableText
from tbal.encoders.base import MAX_TEXT_CHARS


class TextItemCreate(BaseModel):
    """One text item: its id, the string (1..MAX_TEXT_CHARS characters, not blank) and optional ground
    truth (a class index or name; for simulations and audits only)."""

    model_config = ConfigDict(extra="forbid")

    external_id: ExternalId
    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS), StorableText]
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


class ImageUrl(BaseModel):
    """An image to fetch: its http(s) URL (public addresses only, unless the operator allows private
    ones), its external id (default: the URL) and optional ground truth."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=8, max_length=2048, pattern=r"^https?://[^\x00\s]+$")
    external_id: ExternalId | None = None
    ground_truth: int | str | None = None


class ImageUrlsCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[ImageUrl] = Field(min_length=1, max_length=1_000)


class TextsPredict(BaseModel):
    """Texts to score with the project's latest model (not stored)."""

    model_config = ConfigDict(extra="forbid")

    texts: list[Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS), StorableText]] = Field(
        min_length=1, max_length=1_000
    )
