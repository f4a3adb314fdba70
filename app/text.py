"""The one set of rules for text that reaches the database: no NUL character (PostgreSQL text cannot
hold one), encodable as UTF-8 (a lone surrogate such as ``"\\ud800"`` cannot be stored), and a length
in characters within the column's bounds.

Request schemas use the annotated types below; code that takes text outside a schema
(query parameters, ids read from an uploaded file) calls :func:`check_text`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, StrictInt

from app.errors import Invalid

MAX_EXTERNAL_ID = 255
MAX_ID_PREFIX = 200
"""Longest ``id_prefix`` of an upload (``<id_prefix><row>`` must fit in an external id)."""
MAX_CLASS_NAME = 200
MAX_BATCH = 100_000
"""Most items or labels one JSON request may carry at all (``TBAL_MAX_BATCH_ITEMS``, default 10,000, is
the configured limit): the schema refuses a longer list from its length, before validating any of it."""
MAX_NAME = 128
"""Annotator names (votes), API key names and other short names."""


def text_problem(value: str, *, min_length: int = 1, max_length: int) -> str | None:
    """Why ``value`` may not be stored, or None when it may."""
    if not min_length <= len(value) <= max_length:
        return f"expected {min_length}..{max_length} characters, got {len(value)}"
    if "\x00" in value:
        return "must not contain NUL characters (\\u0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (no lone surrogates such as \\ud800)"
    return None


def check_text(value: str, field: str, *, min_length: int = 1, max_length: int) -> str:
    """``value`` if it may be stored; :class:`Invalid` naming ``field`` otherwise."""
    problem = text_problem(value, min_length=min_length, max_length=max_length)
    if problem is not None:
        raise Invalid(field, problem)
    return value


def _storable(value: str) -> str:
    # Lengths are checked by the Field constraints (with pydantic's own messages); this adds the rest.
    problem = text_problem(value, min_length=0, max_length=len(value))
    if problem is not None:
        raise ValueError(problem)
    return value


StorableText = AfterValidator(_storable)
ExternalId = Annotated[str, Field(min_length=1, max_length=MAX_EXTERNAL_ID), StorableText]
ClassName = Annotated[str, Field(min_length=1, max_length=MAX_CLASS_NAME), StorableText]
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME), StorableText]
ShortName = Annotated[str, Field(min_length=1, max_length=64), StorableText]
Source = Annotated[str, Field(min_length=1, max_length=32), StorableText]

ClassRef = StrictInt | ClassName
"""A class given by its index (0..K-1, a JSON integer: ``true`` is not a class) or its name."""
