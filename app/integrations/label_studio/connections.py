"""Label Studio connections: one per project, identified by a secret in the backend URL.

Label Studio sends its webhooks without any Authorization header (even when Basic auth is configured
for the backend), so the secret in the URL is the credential of every call. A call that does carry an
Authorization header must carry a valid one: ``Basic`` whose password is the connection's secret or a
tbal API key, or ``Bearer`` with either. Only the secret's sha256 is stored.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr
from sqlalchemy.orm import Session

from app.db.models import LabelStudioConnection, Project
from app.errors import DomainError, NotFound, Unauthorized
from app.integrations.label_studio import credentials
from app.integrations.label_studio import repository as repo
from app.integrations.label_studio.schemas import ConnectionCreate, ConnectionRead, ConnectionUpdate
from app.projects import repository as projects_repo
from app.projects.keys_service import authenticate, hash_secret
from app.settings import Settings

SECRET_PREFIX = "ls_"
PREFIX_CHARS = 8
DEFAULT_DATA_FIELD = {"features": "features", "image": "pixels", "text": "text"}
BASE_PATH = "/integrations/label-studio"


@dataclass(frozen=True)
class Linked:
    """The project a backend URL names, and its connection."""

    project: Project
    connection: LabelStudioConnection


def path_of(project_id: int, secret: str = "<secret>") -> str:
    return f"{BASE_PATH}/{project_id}/{secret}"


def connect(
    session: Session, project: Project, body: ConnectionCreate, settings: Settings
) -> tuple[LabelStudioConnection, str]:
    """Create the project's connection, or replace it with a new secret (the old URL stops working).
    Returns the row and the secret (shown once)."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(24)
    row = repo.connection(session, project.id)
    if row is None:
        row = LabelStudioConnection(project_id=project.id)
        session.add(row)
    row.secret_hash = hash_secret(secret)
    row.secret_prefix = secret[:PREFIX_CHARS]
    row.data_field = body.data_field or DEFAULT_DATA_FIELD[project.data_kind]
    row.id_field = body.id_field
    row.from_name = row.to_name = None
    _set_sync(row, settings, body.ls_url, body.ls_project, body.ls_token, body.auto_labels_as)
    session.commit()
    return row, secret


def update(
    session: Session, project: Project, body: ConnectionUpdate, settings: Settings
) -> LabelStudioConnection:
    """Change the two-way sync settings (the backend URL's secret is kept)."""
    row = get_connection(session, project)
    _set_sync(row, settings, body.ls_url, body.ls_project, body.ls_token, body.auto_labels_as)
    session.commit()
    return row


def _set_sync(
    row: LabelStudioConnection,
    settings: Settings,
    url: Any | None,
    ls_project: int | None,
    token: SecretStr | None,
    auto_labels_as: str | None,
) -> None:
    if url is not None:
        row.ls_url = str(url).rstrip("/")
    if ls_project is not None:
        row.ls_project = ls_project
    if token is not None:
        row.ls_token = credentials.encrypt(settings, token.get_secret_value())
    if auto_labels_as is not None:
        row.auto_labels_as = auto_labels_as


def get_connection(session: Session, project: Project) -> LabelStudioConnection:
    row = repo.connection(session, project.id)
    if row is None:
        raise NotFound(
            "label_studio",
            f"project {project.id} has no Label Studio connection; "
            f"create one with POST /api/v1/projects/{project.id}/label-studio/connection",
        )
    return row


def settings_of(session: Session, project: Project) -> LabelStudioConnection:
    """The project's connection, or (without one) an unsaved row with the default task data fields: how
    imports and the queue file read and write task data."""
    row = repo.connection(session, project.id)
    if row is not None:
        return row
    return LabelStudioConnection(
        project_id=project.id, data_field=DEFAULT_DATA_FIELD[project.data_kind], id_field="external_id"
    )


def disconnect(session: Session, project: Project) -> None:
    if not repo.remove_connection(session, project.id):
        raise NotFound("label_studio", f"project {project.id} has no Label Studio connection")
    session.commit()


def read(row: LabelStudioConnection) -> ConnectionRead:
    return ConnectionRead(
        project_id=row.project_id,
        path=path_of(row.project_id),
        secret_prefix=row.secret_prefix,
        data_field=row.data_field,
        id_field=row.id_field,
        from_name=row.from_name,
        to_name=row.to_name,
        data_key=row.data_key,
        ls_url=row.ls_url,
        ls_project=row.ls_project,
        has_token=row.ls_token is not None,
        auto_labels_as=row.auto_labels_as or "predictions",
        last_sync_at=row.last_sync_at,
        created_at=row.created_at,
    )


def link(session: Session, project_id: int, secret: str, authorization: str | None) -> Linked:
    """The project and connection of a backend URL; 404 for an unknown project or connection, 401 for a
    wrong secret or a wrong Authorization header (see the module docstring)."""
    project = projects_repo.get(session, project_id)
    row = repo.connection(session, project_id) if project is not None else None
    if project is None or row is None:
        raise NotFound(
            "project_id", f"no Label Studio connection for project {project_id} (is the backend URL right?)"
        )
    if not hmac.compare_digest(hash_secret(secret), row.secret_hash):
        raise Unauthorized(
            "secret", f"the secret in the URL is not project {project_id}'s Label Studio connection secret"
        )
    if authorization:
        _check_authorization(session, authorization, secret)
    return Linked(project=project, connection=row)


def _check_authorization(session: Session, authorization: str, secret: str) -> None:
    scheme, _, credentials = authorization.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise Unauthorized("authorization", "expected 'Basic <base64 of user:password>'") from exc
        _user, sep, token = decoded.partition(":")
        if not sep:
            raise Unauthorized("authorization", "expected 'Basic <base64 of user:password>'")
    elif scheme.lower() == "bearer":
        token = credentials
    else:
        raise Unauthorized("authorization", f"expected Basic or Bearer authorization, got {scheme!r}")
    if token and hmac.compare_digest(token.encode(), secret.encode()):
        return
    try:
        authenticate(session, f"Bearer {token}")
    except DomainError as exc:
        raise Unauthorized(
            "authorization",
            "the Authorization header's password (Basic) or token (Bearer) must be a tbal API key "
            "or the connection secret",
        ) from exc
