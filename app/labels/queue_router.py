"""/projects/{id}/queue (what humans should label next) and /projects/{id}/simulate."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import ProjectDep, SessionDep
from app.api.pagination import DEFAULT_LIMIT, AfterId, Limit
from app.labels import queue_service as service
from app.labels.queue_schemas import QueuePage, SimulateResult

router = APIRouter(prefix="/projects/{project_id}", tags=["queue"])


@router.get("/queue")
def read_queue(
    *,
    project: ProjectDep,
    session: SessionDep,
    after_id: AfterId = 0,
    limit: Limit = DEFAULT_LIMIT,
    include_data: bool = False,
) -> QueuePage:
    """Items to label next, each with its purpose (validation, training or audit; a round's validation
    top-up under ``validation_floor`` is validation). A read only: the validation and seed sets are drawn
    from the pool when items are uploaded (redrawn from the whole pool by each upload until one of their
    queries is answered)."""
    return service.read_queue(session, project, after_id=after_id, limit=limit, include_data=include_data)


@router.post("/simulate")
def simulate(*, project: ProjectDep, session: SessionDep) -> SimulateResult:
    """Answer every open queue item from its ground truth (422 if one has none)."""
    return service.simulate(session, project)
