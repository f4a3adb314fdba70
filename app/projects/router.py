"""/projects: create, list, read, change settings, delete."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.api.deps import CallerDep, ProjectDep, SessionDep, SettingsDep
from app.api.pagination import DEFAULT_LIMIT, AfterId, Limit
from app.items import raw as raw_items
from app.projects import keys_repository as keys_repo
from app.projects import repository as repo
from app.projects import service
from app.projects.keys_service import check_admin
from app.projects.schemas import ProjectCreate, ProjectDetail, ProjectRead, ProjectUpdate

router = APIRouter(prefix="/projects", tags=["projects"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_project(
    *, body: ProjectCreate, session: SessionDep, caller: CallerDep, settings: SettingsDep
) -> ProjectRead:
    """Create a project (admin keys only; give other keys access with ``POST /keys``)."""
    check_admin(caller, "create projects")
    raw_items.check_encoder_allowed(body.settings.encoder, settings.encoder_model_dirs)
    return service.read(service.create_project(session, body))


@router.get("")
def list_projects(
    *, session: SessionDep, caller: CallerDep, after_id: AfterId = 0, limit: Limit = DEFAULT_LIMIT
) -> list[ProjectRead]:
    """The projects the key may use (all of them for an admin key)."""
    if caller.is_admin:
        rows = repo.page(session, after_id=after_id, limit=limit)
    else:
        rows = keys_repo.projects_page(session, caller.key_id, after_id=after_id, limit=limit)
    return [service.read(p) for p in rows]


@router.get("/{project_id}")
def read_project(*, project: ProjectDep, session: SessionDep) -> ProjectDetail:
    return service.read_detail(session, project)


@router.patch("/{project_id}")
def update_project(
    *, project: ProjectDep, body: ProjectUpdate, session: SessionDep, settings: SettingsDep
) -> ProjectRead:
    raw_items.check_encoder_allowed(body.settings.encoder, settings.encoder_model_dirs)
    return service.read(service.update_settings(session, project, body))


@router.delete("/{project_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_project(*, project: ProjectDep, session: SessionDep, settings: SettingsDep) -> Response:
    service.delete_project(session, project, settings.artifacts_dir)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
