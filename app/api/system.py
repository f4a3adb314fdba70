"""/health (no authentication) and /metrics (Prometheus, with an API key)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.deps import CallerDep, StateDep
from app.health import check_health
from app.projects.keys_service import check_admin

router = APIRouter(tags=["system"])


@router.get("/health")
def health(*, state: StateDep) -> dict[str, str]:
    """200 when the database answers and the broker (if any) accepts a connection; 503 naming what is
    down (``field``: database or broker) with ``Retry-After``, never its address."""
    return check_health(state.engine, state.dispatcher)


@router.get("/metrics", response_class=Response)
def metrics(*, state: StateDep, caller: CallerDep) -> Response:
    """Prometheus metrics of the whole service (admin keys only)."""
    check_admin(caller, "read the service's metrics")
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
