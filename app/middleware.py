"""ASGI middleware: refuse oversized bodies with 413 before reading them whole, and count requests."""

from __future__ import annotations

import json
import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.metrics import Metrics


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


STREAMED_MEDIA_TYPES = frozenset({"application/octet-stream", "multipart/form-data"})
"""Bodies that the upload endpoint streams to a file; every other body is held in memory."""


def media_type(content_type: bytes | None) -> str:
    """``b"Application/JSON; charset=utf-8"`` -> ``"application/json"``: the type and subtype, lower
    case, without parameters, as the framework reads them (RFC 9110: media types are case-insensitive)."""
    if not content_type:
        return ""
    return content_type.decode("latin-1").split(";", 1)[0].strip().lower()


class BodySizeLimit:
    """413 when Content-Length is over the limit (nothing read), or as soon as a streamed body passes it.

    Only the media types the upload endpoint streams to disk (:data:`STREAMED_MEDIA_TYPES`) may reach
    ``max_bytes``; every other body (JSON, which is parsed in memory, but also text, forms or no
    Content-Type at all, which the framework reads whole before refusing) is bounded by the smaller
    ``max_json_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_json_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_json_bytes = max_json_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        streamed = media_type(headers.get(b"content-type")) in STREAMED_MEDIA_TYPES
        limit = self.max_bytes if streamed else self.max_json_bytes
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _reject(send, limit)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await _reject(send, limit)


async def _reject(send: Send, limit: int) -> None:
    body = json.dumps(
        {"detail": {"field": "body", "reason": f"request body larger than {limit} bytes"}}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestMetrics:
    """Counts requests and their latency by method, route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)
