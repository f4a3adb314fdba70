"""Keyset pagination parameters: ``after_id`` (the last id seen; 0 to start) and ``limit``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

AfterId = Annotated[int, Query(ge=0, le=2**63 - 1, description="return rows with id > after_id (0 to start)")]
Limit = Annotated[int, Query(ge=1, le=10_000, description="rows per page")]
DEFAULT_LIMIT = 100
