"""/projects/{id}/items: JSON batches, binary uploads (.npy/.npz), and a keyset listing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from app.api.deps import MetricsDep, ProjectDep, SessionDep, SettingsDep
from app.api.pagination import DEFAULT_LIMIT, AfterId, Limit
from app.errors import Invalid
from app.items import repository as repo
from app.items import service as ingest
from app.items.schemas import IngestResult, ItemPage, ItemRead, ItemsCreate
from app.items.uploads import UPLOAD_OPENAPI, receive_upload

router = APIRouter(prefix="/projects/{project_id}/items", tags=["items"])


@router.post("")
def add_items(
    *, project: ProjectDep, body: ItemsCreate, session: SessionDep, settings: SettingsDep, metrics: MetricsDep
) -> IngestResult:
    """Add a batch of items (idempotent on external_id); for large batches use ``/items/upload``."""
    if len(body.items) > settings.max_batch_items:
        raise Invalid(
            "items", f"at most {settings.max_batch_items} items per JSON request; use /items/upload"
        )
    result = ingest.ingest_json(session, project, body, chunk_rows=settings.ingest_chunk_rows)
    metrics.items_ingested.inc(result.inserted)
    return result


@router.post("/upload", openapi_extra=UPLOAD_OPENAPI)
async def upload_items(
    *,
    project: ProjectDep,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    id_prefix: Annotated[str, Query(max_length=200, description="ids of rows when the file has none")] = "",
) -> IngestResult:
    """Add items from a ``.npy`` (X) or ``.npz`` (X, optional external_ids, optional y) file, sent as the
    raw body or as the multipart part ``file``. Without external_ids, row i gets ``<id_prefix><i>``."""
    session.commit()  # end the read transaction: no lock is held while the body streams in
    path = await receive_upload(request, settings)
    try:
        result = await run_in_threadpool(
            ingest.ingest_file,
            session,
            project,
            path,
            id_prefix=id_prefix,
            chunk_rows=settings.ingest_chunk_rows,
            max_inflated_bytes=settings.max_inflated_bytes,
        )
    finally:
        path.unlink(missing_ok=True)
    metrics.items_ingested.inc(result.inserted)
    return result


@router.get("")
def list_items(
    *,
    project: ProjectDep,
    session: SessionDep,
    after_id: AfterId = 0,
    limit: Limit = DEFAULT_LIMIT,
    role: Annotated[str | None, Query(pattern="^(pool|validation|train|removed|audit)$")] = None,
) -> ItemPage:
    rows = repo.page(session, project.id, after_id=after_id, limit=limit, role=role)
    items = [
        ItemRead(
            id=r.id,
            external_id=r.external_id,
            role=r.role,
            has_ground_truth=r.ground_truth is not None,
            human_label=r.human_label,
            auto_label=r.auto_label,
            created_at=r.created_at,
        )
        for r in rows
    ]
    return ItemPage(items=items, next_after_id=rows[-1].id if len(rows) == limit else None)
