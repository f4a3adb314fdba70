"""HTTP routes of the Label Studio integration.

- ``/integrations/label-studio/{project_id}/{secret}/...``: the ML-backend protocol that Label Studio
  calls (the secret in the URL authenticates; see :mod:`app.integrations.label_studio.connections`).
- ``/api/v1/projects/{project_id}/label-studio/...`` (API key): the connection (create / rotate, read,
  delete), importing a Label Studio JSON export, and the queue as a Label Studio import file.
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
from fastapi import APIRouter, BackgroundTasks, Body, Depends, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from app.api.deps import (
    ArtifactsDep,
    DispatcherDep,
    MetricsDep,
    ProjectDep,
    SessionDep,
    SettingsDep,
    require_api_key,
)
from app.errors import DomainError
from app.integrations.label_studio import connections, events, recording, service
from app.integrations.label_studio.connections import Linked
from app.integrations.label_studio.events import RecordedRoute
from app.integrations.label_studio.label_config import ChoicesControl
from app.integrations.label_studio.predictions import queue_tasks
from app.integrations.label_studio.schemas import (
    ConnectionCreate,
    ConnectionCreated,
    ConnectionRead,
    ConnectionUpdate,
    ImportResult,
    LSTask,
    PredictRequest,
    SetupRequest,
    StatusRead,
    SyncResult,
    Webhook,
    WebhookResult,
)
from app.integrations.label_studio.sync import sync_project

TAGS: list[str | Any] = ["label-studio"]


def get_linked(
    *,
    project_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    secret: Annotated[str, Path(min_length=1, max_length=200)],
    request: Request,
    session: SessionDep,
) -> Linked:
    request.state.label_studio_session = session  # rolled back before a refusal is recorded (events.py)
    return connections.link(session, project_id, secret, request.headers.get("authorization"))


LinkedDep = Annotated[Linked, Depends(get_linked)]


def get_transport(request: Request) -> httpx.BaseTransport | None:
    """The transport of tbal's calls to Label Studio: the network, or a fake set by tests on
    ``app.state.label_studio_transport``."""
    return getattr(request.app.state, "label_studio_transport", None)


TransportDep = Annotated[httpx.BaseTransport | None, Depends(get_transport)]

backend = APIRouter(
    prefix=connections.BASE_PATH + "/{project_id}/{secret}", tags=TAGS, route_class=RecordedRoute
)


@backend.get("/health")
@backend.get("/")
@backend.get("", include_in_schema=False)
def health(*, linked: LinkedDep) -> dict[str, object]:
    """``{"status": "UP"}`` once the URL names a connected project (nothing is loaded)."""
    return service.health(linked)


@backend.post("/setup")
def setup(
    *, linked: LinkedDep, body: SetupRequest, session: SessionDep, settings: SettingsDep
) -> dict[str, str]:
    """Check the label config's choices against the project's classes; answer the model version."""
    return service.setup(session, linked, body, settings)


@backend.post("/predict")
def predict(
    *,
    linked: LinkedDep,
    body: PredictRequest,
    session: SessionDep,
    settings: SettingsDep,
    cache: ArtifactsDep,
    background: BackgroundTasks,
    request: Request,
    transport: TransportDep,
) -> dict[str, list[Any]]:
    """One entry per task, in order, always: the auto-label, else the latest model's class and
    confidence; an empty result for a task tbal cannot map (recorded in the connection's status)."""
    client = recording.client_factory(linked.connection, settings, transport)
    done = service.predict_tasks(session, linked, body, cache, settings, client)
    _later(
        background, request, session, linked, [(t.task_id, _data_of(body.tasks, t.pos)) for t in done.pending]
    )
    return done.body


def _data_of(tasks: list[LSTask], pos: int) -> dict[str, Any]:
    return tasks[pos].data


def _later(
    background: BackgroundTasks,
    request: Request,
    session: Session,
    linked: Linked,
    tasks: list[tuple[int, dict[str, Any]]],
) -> None:
    """Make the items of raw tasks after the answer went out (this process; see the README). The
    request's transaction ends first: on SQLite it holds the write lock from its first read, and the
    background work may start before the request's session is closed."""
    if tasks:
        project_id = linked.project.id
        session.rollback()  # (expires the ORM objects: nothing of them is read below)
        state = request.app.state.tbal
        background.add_task(
            recording.create_pending,
            state.session_factory,
            project_id,
            tasks,
            state.settings,
            get_transport(request),
        )


@backend.post("/webhook")
def webhook(
    *,
    linked: LinkedDep,
    body: Webhook,
    session: SessionDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
    metrics: MetricsDep,
    background: BackgroundTasks,
    request: Request,
) -> WebhookResult:
    """Annotations (created, updated, deleted), new tasks, and the Train button (a round)."""
    result = service.webhook(session, linked, body, dispatcher, settings)
    by_id = {t.id: t.data for t in body.tasks or []}
    _later(background, request, session, linked, [(t, by_id[t]) for t in result.pending if t in by_id])
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
    *,
    project: ProjectDep,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    body: ConnectionCreate | None = None,
) -> ConnectionCreated:
    """Create the project's Label Studio connection, or give it a new secret (the old URL stops working).
    The answer's ``url`` is what to enter as the backend URL in Label Studio; it is shown once. With
    ``ls_url``, ``ls_project`` and ``ls_token`` (stored encrypted, never shown) tbal also syncs both ways
    (Label Studio's ``/setup`` fills in the project, and the URL and token when none are given)."""
    row, secret = connections.connect(session, project, body or ConnectionCreate(), settings)
    path = connections.path_of(project.id, secret)
    return ConnectionCreated(
        **connections.read(row).model_dump(),
        secret=secret,
        url=str(request.base_url).rstrip("/") + path,
    )


@api.get("/connection")
def read_connection(*, project: ProjectDep, session: SessionDep) -> ConnectionRead:
    return connections.read(connections.get_connection(session, project))


@api.patch("/connection")
def update_connection(
    *, project: ProjectDep, session: SessionDep, settings: SettingsDep, body: ConnectionUpdate
) -> ConnectionRead:
    """Set the two-way sync: Label Studio's URL, project, access token, auto-labels as predictions,
    annotations or off. The backend URL's secret is kept."""
    return connections.read(connections.update(session, project, body, settings))


@api.get("/status")
def read_status(*, project: ProjectDep, session: SessionDep) -> StatusRead:
    """The connection, the queue, and the latest errors: refusals of /setup, /predict and /webhook, tasks
    that could not be mapped, failed syncs (Label Studio shows none of them)."""
    return service.status(session, project)


@api.post("/sync")
def sync(
    *, project: ProjectDep, session: SessionDep, settings: SettingsDep, transport: TransportDep
) -> SyncResult:
    """Sync now: push the queue as tasks, pull missed annotations, write auto-labels back. A failure is
    recorded in the status too."""
    try:
        return sync_project(session, project, settings, transport)
    except DomainError as exc:
        session.rollback()
        _record_sync_failure(session, project.id, exc)
        raise


def _record_sync_failure(session: Session, project_id: int, exc: DomainError) -> None:
    from app.integrations.label_studio import repository as repo

    repo.add_event(session, project_id, "sync", exc.status, f"{exc.field}: {exc.reason}", events.KEEP)
    session.commit()


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
    tasks = recording.read_export(body)
    connection = connections.settings_of(session, project)
    result = recording.import_export(session, project, tasks, connection, settings, from_name=from_name)
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
