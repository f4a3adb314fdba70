"""Domain errors: each carries its HTTP status, the field it is about and a reason; one set of handlers
renders every error as ``{"detail": {"field": ..., "reason": ...}}`` (validation errors add ``errors``).

Services raise these; routers never build ``HTTPException`` themselves.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)


class DomainError(Exception):
    """An expected condition the client must know about; ``status`` is the HTTP status."""

    status: int = 400

    def __init__(self, field: str, reason: str, *, status: int | None = None) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        if status is not None:
            self.status = status

    def body(self) -> dict[str, Any]:
        return {"detail": {"field": self.field, "reason": self.reason}}


class Unauthorized(DomainError):
    status = 401


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class PayloadTooLarge(DomainError):
    status = 413


class UnsupportedMedia(DomainError):
    status = 415


class Invalid(DomainError):
    status = 422


class Unavailable(DomainError):
    status = 503


RETRY_AFTER_S = 5
"""Every 503 says when to try again (``Retry-After``, seconds)."""


def error_response(status: int, field: str, reason: str, **extra: Any) -> JSONResponse:
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_S)
    return JSONResponse({"detail": {"field": field, "reason": reason, **extra}}, status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that render every error in the one shape above."""

    @app.exception_handler(DomainError)
    async def _domain(_request: Request, exc: DomainError) -> JSONResponse:
        return error_response(exc.status, exc.field, exc.reason)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_validation_item(err, exc.body) for err in exc.errors()]
        first = errors[0] if errors else {"field": "body", "reason": "invalid request"}
        return error_response(422, first["field"], first["reason"], errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # 413 comes from the body-size middleware while the body streams in: the body is what is wrong.
        field = "body" if exc.status_code == 413 else "request"
        return error_response(exc.status_code, field, str(exc.detail))

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _database_down(_request: Request, exc: OperationalError | InterfaceError) -> JSONResponse:
        logger.warning("database unavailable: %s", str(exc.orig).splitlines()[0] if exc.orig else exc)
        return _unavailable("the database is unreachable or busy; retry later")

    @app.exception_handler(PoolTimeout)
    async def _pool_exhausted(_request: Request, exc: PoolTimeout) -> JSONResponse:
        logger.warning("no database connection free: %s", exc)
        return _unavailable("no database connection became free in time; retry later")


def _unavailable(reason: str) -> JSONResponse:
    return error_response(503, "database", reason)


def _validation_item(err: Any, body: Any) -> dict[str, str]:
    """One validation error as ``{"field", "reason"}``; malformed JSON says where (the framework gives
    its character offset as the location)."""
    if err.get("type") == "json_invalid":
        loc = err.get("loc", ())
        position = loc[-1] if loc and isinstance(loc[-1], int) else None
        why = str((err.get("ctx") or {}).get("error", "JSON decode error"))
        return {"field": "body", "reason": f"malformed JSON: {why}{_where(body, position)}"}
    return {"field": _field_name(err.get("loc", ())), "reason": str(err.get("msg", "invalid"))}


def _where(document: Any, position: int | None) -> str:
    """`` at line L, column C (character N)`` of ``document`` (a str or bytes), or "" without a position."""
    if position is None:
        return ""
    if isinstance(document, bytes | bytearray):
        document = document.decode("utf-8", errors="replace")
    if not isinstance(document, str):
        return f" at character {position}"
    before = document[:position]
    line = before.count("\n") + 1
    column = position - (before.rfind("\n") + 1) + 1
    return f" at line {line}, column {column} (character {position})"


def _field_name(loc: Any) -> str:
    """``("body", "items", 3, "features")`` -> ``items.3.features`` (the location without "body")."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] if len(parts) > 1 else parts
    return ".".join(parts) or "body"
