"""Typed dependencies, declared once: sessions, settings, the dispatcher, the caller (from its API key)
and the project of the path, which the caller must be allowed to use (403 otherwise)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app.db.models import Project
from app.metrics import Metrics
from app.projects.keys_service import Caller, authenticate, check_project
from app.projects.service import get_project
from app.rounds.dispatch import Dispatcher
from app.rounds.predict_service import ArtifactCache
from app.settings import Settings
from app.state import AppState


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.tbal
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    """One session per request; services commit what they write, the rest is rolled back at close."""
    with state.session_factory() as session:
        yield session


def get_settings(state: StateDep) -> Settings:
    return state.settings


def get_dispatcher(state: StateDep) -> Dispatcher:
    return state.dispatcher


def get_metrics(state: StateDep) -> Metrics:
    return state.metrics


def get_artifacts(state: StateDep) -> ArtifactCache:
    return state.artifacts


bearer = HTTPBearer(auto_error=False, description="an API key made with `tbal create-key`")


def require_api_key(
    state: StateDep,
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """The caller of the key in ``Authorization: Bearer <key>``, checked in its own short transaction
    (FastAPI caches it per request: the router's dependency and the project check share one lookup)."""
    with state.session_factory() as session:
        key = authenticate(session, request.headers.get("authorization"))
        session.rollback()
    return key


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
ArtifactsDep = Annotated[ArtifactCache, Depends(get_artifacts)]
CallerDep = Annotated[Caller, Depends(require_api_key)]


ProjectId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the project's id")]


def get_path_project(project_id: ProjectId, session: SessionDep, caller: CallerDep) -> Project:
    check_project(caller, project_id)
    return get_project(session, project_id)


ProjectDep = Annotated[Project, Depends(get_path_project)]
