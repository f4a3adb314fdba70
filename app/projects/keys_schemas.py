"""API key schemas: a new key (its secret is in the answer once), and keys as listed (never a secret)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.text import Name


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Name: no NUL (PostgreSQL text cannot hold one; without it such a name was a 500, found by `make soak`)
    name: Name = Field(description="who or what uses the key")
    admin: bool = Field(default=False, description="every project, and managing keys")
    projects: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] = Field(
        default_factory=list, max_length=10_000, description="ids of the projects a non-admin key may use"
    )


class ApiKeyRead(BaseModel):
    id: int
    name: str
    prefix: str = Field(description="the secret's first characters, to recognise it")
    admin: bool
    projects: list[int] = Field(description="projects a non-admin key may use (empty for admin keys)")
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    secret: str = Field(description="send as 'Authorization: Bearer <secret>'; shown only in this answer")
