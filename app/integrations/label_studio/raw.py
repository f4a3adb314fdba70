"""Items from Label Studio tasks as Label Studio projects have them: ``$text`` and ``$image``, no
``features`` field.

The data key comes from the label config at ``/setup`` (the object tag that the Choices control labels:
``<Text name="text" value="$text"/>`` -> ``text``; see :func:`label_config.labeled_object`). Then:

- a text project stores the task's text and its features through the service's text ingestion
  (:func:`_ingest_texts`, the encoders of ``tbal.encoders``);
- an image project fetches the image: a file Label Studio hosts (``/data/upload/...``,
  ``/data/local-files/?d=...``, or any URL on the connected Label Studio's host) from the connection's
  Label Studio URL with its stored access token, as the official ML-backend SDK does
  (``label_studio_sdk`` ``get_local_path``: ``Token`` or ``Bearer`` header, only to that host); a
  presigned or public URL directly, without the token, through :func:`app.items.fetch.fetch_bytes`
  (non-public addresses refused unless ``TBAL_ALLOW_PRIVATE_URLS``, redirects checked hop by hop); a
  ``data:`` URI inline. It is decoded with Pillow
  to the project's input shape (:func:`tbal.encoders.images.decode_image`) and stored as uint8.

Work is bounded by a deadline: what is not done by then is returned as pending, and the caller (``/predict``)
creates it in the background, so Label Studio's ``ML_TIMEOUT_PREDICT`` (100 s by default) is never hit.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import numpy as np
from sqlalchemy.orm import Session

from app.db.models import LabelStudioConnection, Project
from app.errors import DomainError, Invalid
from app.integrations.label_studio.client import MAX_FILE_BYTES, LabelStudioClient
from app.items.fetch import fetch_bytes
from app.items.raw import ingest_texts
from app.items.schemas import ItemCreate, ItemsCreate
from app.items.service import ingest_json
from app.settings import Settings
from tbal.encoders import text_problem

TEXT_TAGS = ("Text", "HyperText", "Paragraphs")
IMAGE_TAGS = ("Image",)
ClientFactory = Callable[[], LabelStudioClient | None]


@dataclass(frozen=True)
class RawTask:
    """A task to make an item of: its position in the request, id, external id and raw value."""

    pos: int
    task_id: int
    external_id: str
    value: Any


@dataclass
class RawOutcome:
    created: int = 0
    problems: dict[int, str] = field(default_factory=dict)
    pending: list[RawTask] = field(default_factory=list)


def raw_value(project: Project, connection: LabelStudioConnection, data: dict[str, Any]) -> Any | None:
    """The task's raw text or image reference: ``data[data_key]`` when the label config's object tag (seen
    at ``/setup``) is of the project's kind; before any ``/setup``, ``data[data_field]`` (default ``text``)
    of a text project and ``data["image"]`` (a string) of an image project. None otherwise."""
    if project.data_kind == "text":
        key = connection.data_key if connection.object_tag in TEXT_TAGS else connection.data_field
        return data.get(key) if key else None
    if project.data_kind == "image":
        key = connection.data_key if connection.object_tag in IMAGE_TAGS else "image"
        value = data.get(key) if key else None
        return value if isinstance(value, str) else None
    return None


def create_items(
    session: Session,
    project: Project,
    tasks: list[RawTask],
    settings: Settings,
    client: ClientFactory,
    *,
    deadline: float,
) -> RawOutcome:
    """Create the items of ``tasks`` until ``time.monotonic()`` passes ``deadline`` (committed); the rest
    are pending. A task whose data cannot be used is a problem naming why."""
    out = RawOutcome()
    if project.data_kind == "text":
        good: list[tuple[RawTask, str]] = []
        for t in tasks:
            problem = text_problem(t.value)
            if problem is None:
                good.append((t, t.value))
            else:
                out.problems[t.pos] = f"task {t.task_id}: the text: {problem}"
        for start in range(0, len(good), 256):
            if time.monotonic() > deadline:
                out.pending.extend(t for t, _ in good[start:])
                break
            part = good[start : start + 256]
            out.created += _ingest_texts(
                session, project, [t.external_id for t, _ in part], [v for _, v in part]
            )
        return out
    ls = None
    made: list[ItemCreate] = []
    for i, task in enumerate(tasks):
        if time.monotonic() > deadline:
            out.pending.extend(tasks[i:])
            break
        try:
            if ls is None and isinstance(task.value, str) and not task.value.startswith("data:"):
                ls = client()
            pixels = _image(task.value, project, settings, ls)
        except DomainError as exc:
            out.problems[task.pos] = f"task {task.task_id}: {exc.field}: {exc.reason}"
            continue
        made.append(ItemCreate(external_id=task.external_id, image=pixels.tolist()))
    if made:
        out.created = ingest_json(
            session, project, ItemsCreate(items=made), chunk_rows=settings.ingest_chunk_rows
        ).inserted
    return out


def _ingest_texts(session: Session, project: Project, external_ids: list[str], texts: list[str]) -> int:
    """The service's text ingestion (:func:`app.items.raw.ingest_texts`: texts stored, features
    encoded by the project's encoder), committed; items already there are left alone."""
    return ingest_texts(session, project, external_ids, texts).inserted


def _image(value: Any, project: Project, settings: Settings, ls: LabelStudioClient | None) -> np.ndarray:
    from tbal.encoders.images import ImageError, decode_image

    if not isinstance(value, str) or not value:
        raise Invalid("image", f"expected an image URL, got {type(value).__name__}")
    try:
        return decode_image(_image_bytes(value, settings, ls), project.input_shape)
    except ImageError as exc:
        raise Invalid("image", f"{_shown(value)}: {exc}") from exc


def _image_bytes(url: str, settings: Settings, ls: LabelStudioClient | None) -> bytes:
    if url.startswith("data:"):
        head, _, payload = url.partition(",")
        if not head.endswith(";base64"):
            raise Invalid("image", "expected a base64 data: URI")
        try:
            return base64.b64decode(payload, validate=True)
        except binascii.Error as exc:
            raise Invalid("image", "the data: URI is not valid base64") from exc
    if ls is not None and ls.owns(url):
        return ls.fetch(url)
    if not urlparse(url).netloc:
        raise Invalid(
            "image",
            f"{_shown(url)} is hosted by Label Studio: give the connection Label Studio's URL and an access "
            "token (PATCH /api/v1/projects/{id}/label-studio/connection)",
        )
    return fetch_bytes(
        url,
        "image",
        max_bytes=MAX_FILE_BYTES,
        timeout_s=settings.url_fetch_timeout_s,
        allow_private=settings.allow_private_urls,
    )


def _shown(url: str) -> str:
    """A URL as errors show it: no query string (a presigned URL's signature stays out of logs)."""
    if url.startswith("data:"):
        return "data: URI"
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.netloc}{parsed.path}" if parsed.netloc else parsed.path
