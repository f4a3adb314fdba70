"""/projects/{id}/items/texts and /items/images: raw text and image files in, stored features out.

Texts: JSON (``{"items": [{"external_id", "text", "ground_truth"}]}``), or a file (JSON list, JSONL, CSV)
posted to ``/items/texts/upload``. Images: ``/items/images`` takes a multipart form with any number of
PNG/JPEG/WebP/BMP file parts and/or zip/tar archives of them, or one archive as the raw body.

An upload of at most ``sync_ingest_max_items`` items (2,000 by default) is encoded in the request and
answers 200 with what was stored; a larger one answers 202 with an ingest job as soon as its raw items
are stored, and is encoded in the background (``GET /projects/{id}/jobs/{job_id}`` follows it);
``?background=true|false`` decides for one request.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from app.api.deps import ArtifactsDep, DispatcherDep, MetricsDep, ProjectDep, SessionDep, SettingsDep
from app.api.pagination import DEFAULT_LIMIT, AfterId, Limit
from app.db.models import Project
from app.errors import Invalid
from app.items import jobs_service as jobs
from app.items import raw as raw_items
from app.items import texts_repository as texts_repo
from app.items.jobs_schemas import JobPage, JobRead
from app.items.raw import ImageFile
from app.items.raw.texts import read_text_file, record_ids
from app.items.raw_schemas import ImageUrlsCreate, TextItemsCreate, TextPage, TextRead, TextsPredict
from app.items.schemas import IngestResult
from app.items.uploads import UPLOAD_OPENAPI, receive_upload
from app.metrics import Metrics
from app.rounds import predict_service
from app.rounds.dispatch import Dispatcher
from app.rounds.predict_schemas import PredictItem, PredictRequest, PredictResponse
from app.settings import Settings

router = APIRouter(prefix="/projects/{project_id}", tags=["items"])

Column = Annotated[str | None, Query(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
IdPrefix = Annotated[str, Query(max_length=200, pattern=r"^[^\x00]*$", description="prefix of item ids")]

Background = Annotated[
    bool | None,
    Query(
        description="true: store the raw items and encode them in a job (202); false: encode in the "
        "request (200); default: a job when the upload has more than sync_ingest_max_items items"
    ),
]
JOB_RESPONSES: dict[int | str, dict[str, object]] = {
    202: {"model": JobRead, "description": "stored; encoded by the ingest job in the background"}
}

IMAGES_OPENAPI: dict[str, object] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}}
                    },
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post("/items/texts", response_model=IngestResult, responses=JOB_RESPONSES)
async def add_texts(
    *,
    project: ProjectDep,
    body: TextItemsCreate,
    session: SessionDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    dispatcher: DispatcherDep,
    background: Background = None,
) -> IngestResult | JSONResponse:
    """Add text items (text projects); each is encoded by the project's encoder. Idempotent on
    external_id: known ids are skipped and not encoded again. A large batch answers 202 with an ingest
    job (see the module's docstring)."""
    if len(body.items) > settings.max_batch_items:
        raise Invalid(
            "items", f"at most {settings.max_batch_items} items per request; use /items/texts/upload"
        )
    ids, texts = [i.external_id for i in body.items], [i.text for i in body.items]
    labels = [i.ground_truth for i in body.items]
    raw_items.require_kind(project, "text")
    return await _ingest_texts(
        project, session, settings, metrics, dispatcher, background, ids, texts, labels
    )


@router.post(
    "/items/texts/upload", openapi_extra=UPLOAD_OPENAPI, response_model=IngestResult, responses=JOB_RESPONSES
)
async def upload_texts(
    *,
    project: ProjectDep,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    dispatcher: DispatcherDep,
    format: Annotated[Literal["json", "jsonl", "csv"] | None, Query(description="default: sniffed")] = None,
    text_column: Annotated[str, Query(min_length=1, max_length=200, pattern=r"^[^\x00]*$")] = "text",
    id_column: Column = None,
    label_column: Column = None,
    id_prefix: IdPrefix = "",
    background: Background = None,
) -> IngestResult | JSONResponse:
    """Add text items from a file (raw body or multipart part ``file``): a JSON list of strings or
    objects, JSON Lines, or CSV with a header. ``text_column`` names the text field (default ``text``);
    ``id_column`` the external ids (default: ``<id_prefix><row>``); ``label_column`` ground truth.
    A large file answers 202 with an ingest job (see the module's docstring)."""
    raw_items.require_kind(project, "text")
    session.commit()  # no lock held while the body streams in
    path = await receive_upload(request, settings)
    try:
        records = await run_in_threadpool(
            read_text_file,
            path,
            fmt=format,
            text_column=text_column,
            id_column=id_column,
            label_column=label_column,
        )
    finally:
        path.unlink(missing_ok=True)
    ids = record_ids(records, id_prefix)
    return await _ingest_texts(
        project, session, settings, metrics, dispatcher, background, ids, records.texts, records.labels
    )


async def _ingest_texts(
    project: Project,
    session: Session,
    settings: Settings,
    metrics: Metrics,
    dispatcher: Dispatcher,
    background: bool | None,
    ids: list[str],
    texts: list[str],
    labels: list[str | int | None] | None,
) -> IngestResult | JSONResponse:
    """Texts encoded now (200), or stored for an ingest job (202)."""
    if _in_background(len(ids), background, settings):
        job = await run_in_threadpool(
            jobs.start_text_job,
            session,
            project,
            ids,
            texts,
            labels,
            dispatcher,
            chunk_items=settings.ingest_job_batch,
        )
        return _accepted(job)
    result = await run_in_threadpool(
        raw_items.ingest_texts,
        session,
        project,
        ids,
        texts,
        labels,
        chunk_rows=settings.ingest_chunk_rows,
        device=_device(settings),
        end_reads=True,
    )
    metrics.items_ingested.inc(result.inserted)
    return result


@router.get("/items/texts")
def list_texts(
    *, project: ProjectDep, session: SessionDep, after_id: AfterId = 0, limit: Limit = DEFAULT_LIMIT
) -> TextPage:
    """The texts of a text project's items, by item id (keyset pages)."""
    rows = texts_repo.page(session, project.id, after_id=after_id, limit=limit)
    items = [TextRead(id=i, external_id=e, text=t) for i, e, t in rows]
    return TextPage(items=items, next_after_id=rows[-1][0] if len(rows) == limit else None)


@router.post(
    "/items/images", openapi_extra=IMAGES_OPENAPI, response_model=IngestResult, responses=JOB_RESPONSES
)
async def upload_images(
    *,
    project: ProjectDep,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    dispatcher: DispatcherDep,
    id_prefix: IdPrefix = "",
    labels_from_folders: Annotated[
        bool, Query(description="ground truth from each file's folder name (image-folder layout)")
    ] = False,
    background: Background = None,
) -> IngestResult | JSONResponse:
    """Add image items (image projects) from PNG/JPEG/WebP/BMP files: multipart parts (any field name,
    many per request; ids ``<id_prefix><file name>``) and zip/tar archives (ids ``<id_prefix><path in the
    archive>``), or one archive as the raw body. Each image is decoded, converted to the project's channels
    and resized / centre-cropped to its ``input_shape``; a bad file is a 422 naming it, nothing stored.
    A large upload answers 202 with an ingest job, whose per-item errors name the bad files (the others
    are stored; see the module's docstring)."""
    raw_items.require_image_files(project)  # before the body is read
    session.commit()
    files = await _image_files(request, settings)
    if _in_background(len(files), background, settings):
        job = await run_in_threadpool(
            jobs.start_image_job,
            session,
            project,
            files,
            dispatcher,
            id_prefix=id_prefix,
            labels_from_folders=labels_from_folders,
            chunk_items=settings.ingest_job_batch,
        )
        return _accepted(job)
    result = await run_in_threadpool(
        raw_items.ingest_images,
        session,
        project,
        files,
        id_prefix=id_prefix,
        labels_from_folders=labels_from_folders,
        chunk_rows=settings.ingest_chunk_rows,
        end_reads=True,
    )
    metrics.items_ingested.inc(result.inserted)
    return result


@router.post("/items/images/urls")
async def add_image_urls(
    *,
    project: ProjectDep,
    body: ImageUrlsCreate,
    session: SessionDep,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> IngestResult:
    """Add image items fetched from http(s) URLs (at most 1,000 per request, fetched one by one; an
    address that is private, loopback or link-local is refused unless ``TBAL_ALLOW_PRIVATE_URLS``). Ids
    default to the URL (at most 255 characters). A URL that fails is a 422 naming it; nothing stored."""
    raw_items.require_image_files(project)  # before any URL is resolved or fetched
    session.commit()
    names = [item.external_id or item.url for item in body.items]
    files = await run_in_threadpool(
        raw_items.fetch_images,
        [item.url for item in body.items],
        names,
        max_bytes=raw_items.MAX_FILE_BYTES,
        timeout_s=settings.url_fetch_timeout_s,
        allow_private=settings.allow_private_urls,
    )
    result = await run_in_threadpool(
        raw_items.ingest_images,
        session,
        project,
        files,
        labels=[item.ground_truth for item in body.items],
        chunk_rows=settings.ingest_chunk_rows,
        end_reads=True,
    )
    metrics.items_ingested.inc(result.inserted)
    return result


@router.post("/predict/texts", tags=["predict"])
async def predict_texts(
    *,
    project: ProjectDep,
    body: TextsPredict,
    session: SessionDep,
    settings: SettingsDep,
    artifacts: ArtifactsDep,
) -> PredictResponse:
    """Texts that are not stored, encoded by the project's encoder and scored by its latest model: class,
    confidence and whether each clears its class's threshold (409 before the first model)."""
    raw_items.require_kind(project, "text")
    X = await run_in_threadpool(raw_items.encode_texts, project, body.texts, device=_device(settings))
    request = PredictRequest(items=[PredictItem(features=row) for row in X.tolist()])
    return await run_in_threadpool(predict_service.predict, session, project, request, artifacts)


@router.post("/predict/images", tags=["predict"], openapi_extra=IMAGES_OPENAPI)
async def predict_images(
    *,
    project: ProjectDep,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    artifacts: ArtifactsDep,
) -> PredictResponse:
    """Image files that are not stored (multipart parts or an archive, at most 1,000), decoded as uploads
    are (and run through the project's backbone, if it has one), scored by the latest model; the
    predictions follow the order of the files (archive members in archive order)."""
    raw_items.require_image_files(project)
    session.commit()
    files = await _image_files(request, settings)
    if len(files) > raw_items.MAX_PREDICT_FILES:
        raise Invalid("files", f"at most {raw_items.MAX_PREDICT_FILES} images per request")
    items = await run_in_threadpool(raw_items.predict_items_of_images, project, files)
    request_body = PredictRequest(items=[PredictItem(**item) for item in items])
    return await run_in_threadpool(predict_service.predict, session, project, request_body, artifacts)


async def _image_files(request: Request, settings: Settings) -> list[ImageFile]:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        path = await receive_upload(request, settings)  # read from disk, never held whole in memory
        try:
            with path.open("rb") as handle:
                head = handle.read(512)
            if not raw_items.is_archive("", head):
                raise Invalid(
                    "body", "expected a zip or tar archive of images, or a multipart form of image files"
                )
            return await run_in_threadpool(raw_items.archive_images, path, "body")
        finally:
            path.unlink(missing_ok=True)
    files: list[ImageFile] = []
    async with request.form(max_files=settings.max_batch_items, max_fields=16) as form:
        for field, value in form.multi_items():
            if not isinstance(value, UploadFile):
                raise Invalid(field, "expected file parts only (query parameters carry the options)")
            name = _part_name(value.filename or field)
            data = await value.read()
            if raw_items.is_archive(name, data[:512]):
                files.extend(await run_in_threadpool(raw_items.archive_images, data, f"files.{name}"))
            else:
                files.append(ImageFile(name, data))
    if not files:
        raise Invalid("files", "no image files: send multipart file parts or a zip/tar archive")
    return files


def _part_name(filename: str) -> str:
    """A part's file name as the item's name: its relative path kept (folders can name classes), a path
    that is absolute or climbs out reduced to the file name."""
    raw = filename.replace("\\", "/")
    path = PurePosixPath(raw)
    return path.name if path.is_absolute() or ".." in path.parts else raw


@router.get("/jobs/{job_id}")
def get_job(*, project: ProjectDep, session: SessionDep, job_id: int) -> JobRead:
    """An ingest job: status, items done / total, what was stored, and the items it refused."""
    return jobs.job_read(jobs.get_job(session, project, job_id))


@router.get("/jobs")
def list_jobs(
    *, project: ProjectDep, session: SessionDep, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> JobPage:
    """The project's latest ingest jobs, newest first."""
    return JobPage(items=[jobs.job_read(j) for j in jobs.list_jobs(session, project, limit)])


def _in_background(n_items: int, background: bool | None, settings: Settings) -> bool:
    return background if background is not None else n_items > settings.sync_ingest_max_items


def _accepted(job: JobRead) -> JSONResponse:
    """202 with the job, and where to follow it."""
    body = job.model_dump(mode="json")
    location = f"/api/v1/projects/{job.project_id}/jobs/{job.id}"
    return JSONResponse(body, status_code=202, headers={"Location": location})


def _device(settings: Settings) -> str:
    return raw_items.service_device(settings.train_device)
