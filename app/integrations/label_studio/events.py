"""No silent failure: what goes wrong between Label Studio and tbal is logged with its reason and kept
as an event of the connection (the latest :data:`KEEP` per project), which the connection's status shows.

Label Studio shows little of it (``../shared/fixtures/label-studio/README.md``): it discards webhook
answers, reports "Retrieved N predictions" whatever ``/predict`` answered, and answers ``200 ""`` to the
Train button when the backend refused. So every refusal of ``/setup``, ``/predict`` and ``/webhook`` (a
4xx or 5xx, with the same ``field`` and ``reason`` as the answer), every task ``/predict`` or a webhook
could not map, and every failed sync is recorded here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session, sessionmaker

from app.errors import DomainError
from app.integrations.label_studio import repository as repo

logger = logging.getLogger("app.integrations.label_studio")

KEEP = 200
"""Events kept per project (older ones are dropped as new ones come)."""
MAX_REASON = 2_000


def record(factory: sessionmaker[Session], project_id: int, source: str, status: int, reason: str) -> None:
    """Log and keep an event in its own transaction (the caller's may be rolled back). Best effort: a
    database that is away loses the event, not the log line."""
    logger.warning("label studio %s for project %s: %s %s", source, project_id, status, reason)
    try:
        with factory() as session:
            repo.add_event(session, project_id, source, status, reason[:MAX_REASON], KEEP)
            session.commit()
    except Exception as exc:  # never let the bookkeeping hide the original answer
        logger.warning("could not record a Label Studio event of project %s: %s", project_id, exc)


def _project_id(request: Request) -> int | None:
    value = request.path_params.get("project_id")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _reason(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, DomainError):
        return exc.status, f"{exc.field}: {exc.reason}"
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return 422, f"{where}: {first.get('msg', 'invalid request')}"
    return 500, f"{type(exc).__name__}: {exc}"


def _release(request: Request) -> None:
    """End the request's transaction (it holds SQLite's write lock from its first read) so that the event
    can be written in a transaction of its own; nothing of a refused call is kept anyway."""
    session = getattr(request.state, "label_studio_session", None)
    if isinstance(session, Session):
        session.rollback()


class RecordedRoute(APIRoute):
    """A backend route whose refusals are logged and recorded (for a project that exists; an unknown
    project id is only logged)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        source = self.path.rstrip("/").rsplit("/", 1)[-1] or "health"

        async def recorded(request: Request) -> Response:
            try:
                response = await handler(request)
            except Exception as exc:
                status, reason = _reason(exc)
                pid = _project_id(request)
                if pid is not None and status != 404:
                    _release(request)
                    state = request.app.state.tbal
                    record(state.session_factory, pid, source, status, reason)
                else:
                    logger.warning("label studio %s refused (%s): %s", source, status, reason)
                raise
            return response

        return recorded
