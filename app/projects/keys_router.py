"""/keys: API keys made, listed and revoked by admin keys; /keys/me: the caller's own key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from app.api.deps import CallerDep, SessionDep
from app.db.models import ApiKey
from app.errors import NotFound
from app.projects import keys_repository as repo
from app.projects import keys_service as service
from app.projects.keys_schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead

router = APIRouter(prefix="/keys", tags=["keys"])

KeyId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the key's id")]


def _read(key: ApiKey, projects: list[int]) -> ApiKeyRead:
    return ApiKeyRead(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        admin=key.is_admin,
        projects=projects,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )


@router.post("", status_code=status.HTTP_201_CREATED)
def create_key(*, body: ApiKeyCreate, session: SessionDep, caller: CallerDep) -> ApiKeyCreated:
    """A new key (admin only): ``admin`` for every project, else the listed ``projects``. The answer
    holds the secret; it is stored only as a hash and cannot be shown again."""
    service.check_admin(caller, "create keys")
    key, secret = service.new_key(session, body.name, admin=body.admin, project_ids=body.projects)
    session.commit()
    read = _read(key, [] if key.is_admin else sorted(set(body.projects)))
    return ApiKeyCreated(**read.model_dump(), secret=secret)


@router.get("")
def list_keys(*, session: SessionDep, caller: CallerDep) -> list[ApiKeyRead]:
    """Every key, revoked ones included (admin only); never a secret."""
    service.check_admin(caller, "list keys")
    keys = repo.list_all(session)
    projects = repo.project_ids_by_key(session, [k.id for k in keys])
    return [_read(k, projects[k.id]) for k in keys]


@router.get("/me")
def read_own_key(*, session: SessionDep, caller: CallerDep) -> ApiKeyRead:
    """The key this request was made with."""
    return _read(service.get_key(session, caller.key_id), sorted(caller.project_ids))


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_key(*, key_id: KeyId, session: SessionDep, caller: CallerDep) -> Response:
    """Revoke a key (admin only); it is refused from the next request on. 404 when no such active key."""
    service.check_admin(caller, "revoke keys")
    if not service.revoke(session, key_id):
        raise NotFound("key_id", f"no active key {key_id}")
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
