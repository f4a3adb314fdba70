"""/projects/{id}/labels: human labels in, and a keyset listing."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import MetricsDep, ProjectDep, SessionDep, SettingsDep
from app.api.pagination import DEFAULT_LIMIT, AfterId, Limit
from app.errors import Invalid
from app.labels import repository as repo
from app.labels import service
from app.labels.schemas import HumanLabelPage, HumanLabelRead, HumanLabelsCreate, LabelsResult

router = APIRouter(prefix="/projects/{project_id}/labels", tags=["labels"])


@router.post("")
def add_labels(
    *,
    project: ProjectDep,
    body: HumanLabelsCreate,
    session: SessionDep,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> LabelsResult:
    """Human labels: a class, a distribution, or votes per annotator; all of the batch or nothing."""
    if len(body.labels) > settings.max_batch_items:
        raise Invalid("labels", f"at most {settings.max_batch_items} labels per request")
    result = service.post_labels(session, project, body)
    metrics.labels_received.inc(result.received)
    return result


@router.get("")
def list_labels(
    *, project: ProjectDep, session: SessionDep, after_id: AfterId = 0, limit: Limit = DEFAULT_LIMIT
) -> HumanLabelPage:
    rows = repo.human_labels_page(session, project.id, after_id=after_id, limit=limit)
    items = [
        HumanLabelRead(
            id=h.id,
            item_id=h.item_id,
            external_id=external_id,
            role=role,
            label=h.label,
            class_name=project.classes[h.label],
            distribution=h.distribution,
            votes=h.votes,
            source=h.source,
            created_at=h.created_at,
            updated_at=h.updated_at,
        )
        for h, external_id, role in rows
    ]
    return HumanLabelPage(items=items, next_after_id=rows[-1][0].id if len(rows) == limit else None)
