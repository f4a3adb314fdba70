"""/projects/{id}/auto-labels (keyset pages with filters) and /projects/{id}/export."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from app.api.deps import ProjectDep, SessionDep, StateDep
from app.api.pagination import DEFAULT_LIMIT, AfterId, Limit
from app.errors import Invalid
from app.projects.classes import class_index
from app.rounds import auto_labels_repository as repo
from app.rounds.auto_labels_schemas import AutoLabelPage, AutoLabelRead
from app.rounds.exports_service import MEDIA_TYPES, ExportFormat, export_records, render

router = APIRouter(prefix="/projects/{project_id}", tags=["auto-labels"])

ClassFilter = Annotated[str | None, Query(alias="class", description="a class name or index")]
Confidence = Annotated[
    float | None, Query(ge=0.0, le=1.0, description="confidence scores are probabilities, in [0, 1]")
]


@router.get("/auto-labels")
def list_auto_labels(
    *,
    project: ProjectDep,
    session: SessionDep,
    after_id: AfterId = 0,
    limit: Limit = DEFAULT_LIMIT,
    round_id: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    class_: ClassFilter = None,
    min_confidence: Confidence = None,
    max_confidence: Confidence = None,
) -> AutoLabelPage:
    if min_confidence is not None and max_confidence is not None and min_confidence > max_confidence:
        raise Invalid("min_confidence", f"min_confidence {min_confidence} > max_confidence {max_confidence}")
    label = None
    if class_ is not None:
        label = class_index(project.classes, int(class_) if class_.isdigit() else class_, "class")
    rows = repo.page(
        session,
        project.id,
        after_id=after_id,
        limit=limit,
        round_id=round_id,
        label=label,
        min_confidence=min_confidence,
        max_confidence=max_confidence,
    )
    items = [
        AutoLabelRead(
            id=a.id,
            item_id=a.item_id,
            external_id=external_id,
            round_id=a.round_id,
            label=a.label,
            class_name=project.classes[a.label],
            confidence=a.confidence,
            created_at=a.created_at,
        )
        for a, external_id in rows
    ]
    return AutoLabelPage(items=items, next_after_id=rows[-1][0].id if len(rows) == limit else None)


@router.get("/export", response_class=StreamingResponse)
def export_labels(
    *,
    project: ProjectDep,
    session: SessionDep,
    state: StateDep,
    format: Annotated[ExportFormat, Query()] = "jsonl",
    job_name: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")] = None,
) -> StreamingResponse:
    """Every labeled item (human labels first, then auto-labels): JSONL, CSV, or a SageMaker Ground
    Truth style output manifest (``<job>`` and ``<job>-metadata`` with class-name, confidence,
    human-annotated, creation-date, job-name)."""
    session.commit()  # end the read transaction: the stream reads in pages, each in its own transaction
    job = job_name or project.name.replace("_", "-").replace(".", "-")
    lines = render(export_records(state.session_factory, project.id), project, format, job)
    extension = "csv" if format == "csv" else "jsonl" if format == "jsonl" else "manifest"
    return StreamingResponse(
        lines,
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{project.name}-labels.{extension}"'},
    )
