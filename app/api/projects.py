"""/projects: create, list, read, change settings, delete."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.api.deps import ProjectDep, SessionDep, SettingsDep
from app.api.pagination import DEFAULT_LIMIT, AfterId, Limit
from app.repositories import projects as repo
from app.schemas.projects import ProjectCreate, ProjectDetail, ProjectRead, ProjectUpdate
from app.services import projects as service

router = APIRouter(prefix="/projects", tags=["projects"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_project(*, body: ProjectCreate, session: SessionDep) -> ProjectRead:
    return service.read(service.create_project(session, body))


@router.get("")
def list_projects(
    *, session: SessionDep, after_id: AfterId = 0, limit: Limit = DEFAULT_LIMIT
) -> list[ProjectRead]:
    return [service.read(p) for p in repo.page(session, after_id=after_id, limit=limit)]


@router.get("/{project_id}")
def read_project(*, project: ProjectDep, session: SessionDep) -> ProjectDetail:
    return service.read_detail(session, project)


@router.patch("/{project_id}")
def update_project(*, project: ProjectDep, body: ProjectUpdate, session: SessionDep) -> ProjectRead:
    return service.read(service.update_settings(session, project, body))


@router.delete("/{project_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_project(*, project: ProjectDep, session: SessionDep, settings: SettingsDep) -> Response:
    service.delete_project(session, project, settings.artifacts_dir)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
