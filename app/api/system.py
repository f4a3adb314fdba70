"""/health (no authentication) and /metrics (Prometheus, with an API key)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.deps import CallerDep, StateDep
from app.errors import Unavailable
from app.services.api_keys import check_admin

router = APIRouter(tags=["system"])


@router.get("/health")
def health(*, state: StateDep) -> dict[str, str]:
    """200 when the database answers; 503 with the reason otherwise."""
    try:
        connection = state.engine.raw_connection()  # no transaction: never waits behind SQLite's writer
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
        finally:
            connection.close()
    except Exception as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:300]
        raise Unavailable("database", f"database unreachable: {reason}") from exc
    return {"status": "ok", "database": "ok", "dispatcher": state.dispatcher.name}


@router.get("/metrics", response_class=Response)
def metrics(*, state: StateDep, caller: CallerDep) -> Response:
    """Prometheus metrics of the whole service (admin keys only)."""
    check_admin(caller, "read the service's metrics")
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
