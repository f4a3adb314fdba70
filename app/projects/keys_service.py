"""API keys: made by an admin (``tbal create-key`` or ``POST /api/v1/keys``), shown once, stored as the
sha256 of the secret.

An admin key uses every project and manages keys; any other key uses only the projects it was given
(another project's routes answer 403, and project lists show only its own). Failed authentications and
refused accesses are logged with the key's public prefix only, never the secret.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from app.db.base import utcnow
from app.db.models import ApiKey
from app.errors import DomainError, Invalid, NotFound, Unauthorized
from app.projects import keys_repository as repo

logger = logging.getLogger(__name__)

SECRET_PREFIX = "tbal_"
PREFIX_CHARS = 12
LOGGED_CHARS = 8
"""Characters of an unknown secret that may be logged ("tbal_" and three more: enough to tell a typo
from a key of another system, far too few to use)."""


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key's id, name, public prefix, and what it may use."""

    key_id: int
    name: str
    prefix: str
    is_admin: bool
    project_ids: frozenset[int]

    def may_use(self, project_id: int) -> bool:
        return self.is_admin or project_id in self.project_ids

    def describe(self) -> str:
        return f"key {self.key_id} ({self.prefix}…, {self.name!r})"


class Forbidden(DomainError):
    status = 403


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key(
    session: Session, name: str, *, admin: bool, project_ids: Sequence[int] = ()
) -> tuple[ApiKey, str]:
    """Add a key (not committed); returns the row and the secret, which is stored nowhere."""
    if not name.strip():
        raise Invalid("name", "a key needs a non-empty name")
    if not admin and not project_ids:
        raise Invalid("projects", "a key that is not admin needs at least one project")
    missing = sorted(set(project_ids) - repo.existing_projects(session, project_ids))
    if missing:
        raise Invalid("projects", f"no project {', '.join(map(str, missing))}")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    key = repo.add(
        session,
        name=name,
        prefix=secret[:PREFIX_CHARS],
        key_hash=hash_secret(secret),
        is_admin=admin,
        project_ids=[] if admin else project_ids,
    )
    return key, secret


def create_key(
    session_factory: sessionmaker[Session],
    name: str,
    *,
    admin: bool | None = None,
    project_ids: Sequence[int] = (),
) -> tuple[ApiKey, str]:
    """A new key named ``name`` in its own transaction: admin unless ``project_ids`` are given."""
    if admin is None:
        admin = not project_ids
    with session_factory() as session, session.begin():
        return new_key(session, name, admin=admin, project_ids=project_ids)


def revoke_key(session_factory: sessionmaker[Session], key_id: int) -> bool:
    with session_factory() as session, session.begin():
        return revoke(session, key_id)


def revoke(session: Session, key_id: int) -> bool:
    """Revoke an active key (not committed); False when there is no such active key."""
    done = repo.revoke(session, key_id, utcnow())
    if done:
        logger.info("key %d revoked", key_id)
    return done


def authenticate(session: Session, authorization: str | None) -> Caller:
    """The caller of an ``Authorization: Bearer <secret>`` header; 401 with the reason otherwise.
    Failures are logged with a short prefix only, never the secret."""
    if not authorization:
        raise Unauthorized("authorization", "missing header 'Authorization: Bearer <API key>'")
    scheme, _, secret = authorization.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        logger.warning("authentication failed: not a bearer token")
        raise Unauthorized("authorization", "expected 'Authorization: Bearer <API key>'")
    key = repo.by_hash(session, hash_secret(secret))
    if key is None:
        logger.warning("authentication failed: unknown key %s…", secret[:LOGGED_CHARS])
        raise Unauthorized("authorization", "unknown API key")
    if key.revoked_at is not None:
        logger.warning("authentication failed: revoked key %d (%s…, %r)", key.id, key.prefix, key.name)
        raise Unauthorized("authorization", "this API key was revoked")
    projects = frozenset() if key.is_admin else frozenset(repo.project_ids(session, key.id))
    return Caller(key.id, key.name, key.prefix, key.is_admin, projects)


def check_project(caller: Caller, project_id: int) -> None:
    """403 (logged) when ``caller`` may not use project ``project_id``. Checked before the project is
    looked up, so a key learns nothing about projects it may not use."""
    if not caller.may_use(project_id):
        logger.warning("access refused: %s may not use project %d", caller.describe(), project_id)
        raise Forbidden("project_id", f"this API key may not use project {project_id}")


def check_admin(caller: Caller, action: str) -> None:
    if not caller.is_admin:
        logger.warning("access refused: %s is not admin (%s)", caller.describe(), action)
        raise Forbidden("authorization", f"only an admin key may {action}")


def get_key(session: Session, key_id: int) -> ApiKey:
    key = repo.get(session, key_id)
    if key is None:
        raise NotFound("key_id", f"no key {key_id}")
    return key
