"""HTTP routes of the Label Studio integration.

- ``/integrations/label-studio/{project_id}/{secret}/...``: the ML-backend protocol that Label Studio
  calls (the secret in the URL authenticates; see :mod:`app.integrations.label_studio.connections`).
- ``/api/v1/projects/{project_id}/label-studio/...`` (API key): the connection (create / rotate, read,
  delete), importing a Label Studio JSON export, and the queue as a Label Studio import file.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse

from app.api.deps import (
    ArtifactsDep,
    DispatcherDep,
    MetricsDep,
    ProjectDep,
    SessionDep,
    SettingsDep,
    require_api_key,
)
from app.integrations.label_studio import connections, service
from app.integrations.label_studio.connections import Linked
from app.integrations.label_studio.label_config import ChoicesControl
from app.integrations.label_studio.predictions import queue_tasks
from app.integrations.label_studio.schemas import (
    ConnectionCreate,
    ConnectionCreated,
    ConnectionRead,
    ImportResult,
    PredictRequest,
    SetupRequest,
    Webhook,
    WebhookResult,
)

TAGS: list[str | Any] = ["label-studio"]


def get_linked(
    *,
    project_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    secret: Annotated[str, Path(min_length=1, max_length=200)],
    request: Request,
    session: SessionDep,
) -> Linked:
    return connections.link(session, project_id, secret, request.headers.get("authorization"))


LinkedDep = Annotated[Linked, Depends(get_linked)]

backend = APIRouter(prefix=connections.BASE_PATH + "/{project_id}/{secret}", tags=TAGS)


@backend.get("/health")
@backend.get("/")
@backend.get("", include_in_schema=False)
def health(*, linked: LinkedDep) -> dict[str, object]:
    """``{"status": "UP"}`` once the URL names a connected project (nothing is loaded)."""
    return service.health(linked)


@backend.post("/setup")
def setup(*, linked: LinkedDep, body: SetupRequest, session: SessionDep) -> dict[str, str]:
    """Check the label config's choices against the project's classes; answer the model version."""
    return service.setup(session, linked, body)


@backend.post("/predict")
def predict(
    *,
    linked: LinkedDep,
    body: PredictRequest,
    session: SessionDep,
    settings: SettingsDep,
    cache: ArtifactsDep,
) -> dict[str, list[dict[str, object]]]:
    """One prediction per task, in order: the auto-label, else the latest model's class and confidence."""
    return service.predict_tasks(session, linked, body, cache, settings)


@backend.post("/webhook")
def webhook(
    *,
    linked: LinkedDep,
    body: Webhook,
    session: SessionDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
    metrics: MetricsDep,
) -> WebhookResult:
    """Annotations (created, updated, deleted), new tasks, and the Train button (a round)."""
    result = service.webhook(session, linked, body, dispatcher, settings)
    metrics.labels_received.inc(result.labels_written)
    metrics.items_ingested.inc(result.items_created)
    if result.round_id is not None:
        metrics.rounds_started.inc()
    return result


@backend.get("/versions")
def versions(*, linked: LinkedDep, session: SessionDep) -> dict[str, list[str]]:
    return service.versions(session, linked)


api = APIRouter(
    prefix="/api/v1/projects/{project_id}/label-studio", tags=TAGS, dependencies=[Depends(require_api_key)]
)


@api.post("/connection", status_code=status.HTTP_201_CREATED)
def connect(
    *, project: ProjectDep, request: Request, session: SessionDep, body: ConnectionCreate | None = None
) -> ConnectionCreated:
    """Create the project's Label Studio connection, or give it a new secret (the old URL stops working).
    The answer's ``url`` is what to enter as the backend URL in Label Studio; it is shown once."""
    row, secret = connections.connect(session, project, body or ConnectionCreate())
    path = connections.path_of(project.id, secret)
    return ConnectionCreated(
        **connections.read(row).model_dump(),
        secret=secret,
        url=str(request.base_url).rstrip("/") + path,
    )


@api.get("/connection")
def read_connection(*, project: ProjectDep, session: SessionDep) -> ConnectionRead:
    return connections.read(connections.get_connection(session, project))


@api.delete("/connection", status_code=status.HTTP_204_NO_CONTENT)
def delete_connection(*, project: ProjectDep, session: SessionDep) -> Response:
    connections.disconnect(session, project)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@api.post("/import")
def import_export(
    *,
    project: ProjectDep,
    body: Annotated[list[dict[str, Any]], Body(description="a Label Studio export, exportType=JSON")],
    session: SessionDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    from_name: Annotated[str | None, Query(max_length=255)] = None,
) -> ImportResult:
    """Import a Label Studio JSON export: tasks -> items (new ones join the pool), annotations -> human
    labels (several annotators -> a soft label, cancelled ones dropped). Idempotent."""
    tasks = service.read_export(body)
    connection = connections.settings_of(session, project)
    result = service.import_export(session, project, tasks, connection, settings, from_name=from_name)
    metrics.labels_received.inc(result.labels_written)
    metrics.items_ingested.inc(result.items_created)
    return result


@api.get("/tasks")
def export_tasks(
    *,
    project: ProjectDep,
    session: SessionDep,
    settings: SettingsDep,
    cache: ArtifactsDep,
    from_name: Annotated[str | None, Query(max_length=255)] = None,
    to_name: Annotated[str | None, Query(max_length=255)] = None,
) -> JSONResponse:
    """The open queue as a Label Studio import file (a JSON list of tasks), with tbal's predictions once
    a model exists (``from_name`` / ``to_name`` default to the control seen at Label Studio's last
    ``/setup``). Import it in Label Studio (Import, or ``POST /api/projects/{id}/import``)."""
    row = connections.settings_of(session, project)
    name_from = from_name or row.from_name
    name_to = to_name or row.to_name
    control = (
        ChoicesControl(name_from, name_to, tuple(project.classes), False) if name_from and name_to else None
    )
    tasks = queue_tasks(session, project, row, cache, control, batch=settings.max_batch_items)
    filename = f"tbal-{project.name}-queue.json"
    return JSONResponse(tasks, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


router = APIRouter()
router.include_router(backend)
router.include_router(api)
