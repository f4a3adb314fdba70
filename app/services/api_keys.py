"""API keys: created by an admin command, shown once, stored as the sha256 of the secret."""

from __future__ import annotations

import hashlib
import logging
import secrets

from sqlalchemy.orm import Session, sessionmaker

from app.db.base import utcnow
from app.db.models import ApiKey
from app.errors import Unauthorized
from app.repositories import api_keys as repo

logger = logging.getLogger(__name__)

SECRET_PREFIX = "tbal_"
PREFIX_CHARS = 12


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(session_factory: sessionmaker[Session], name: str) -> tuple[ApiKey, str]:
    """A new key named ``name``; returns the row and the secret (which is not stored anywhere)."""
    if not name.strip():
        raise ValueError("a key needs a non-empty name")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    with session_factory() as session, session.begin():
        key = repo.add(session, name=name, prefix=secret[:PREFIX_CHARS], key_hash=hash_secret(secret))
    return key, secret


def revoke_key(session_factory: sessionmaker[Session], key_id: int) -> bool:
    with session_factory() as session, session.begin():
        return repo.revoke(session, key_id, utcnow())


def authenticate(session: Session, authorization: str | None) -> ApiKey:
    """The key of an ``Authorization: Bearer <secret>`` header; 401 with the reason otherwise.
    Failures are logged with the key's prefix only, never the secret."""
    if not authorization:
        raise Unauthorized("authorization", "missing header 'Authorization: Bearer <API key>'")
    scheme, _, secret = authorization.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise Unauthorized("authorization", "expected 'Authorization: Bearer <API key>'")
    key = repo.by_hash(session, hash_secret(secret))
    if key is None:
        logger.warning("authentication failed: unknown key %s…", secret[:PREFIX_CHARS])
        raise Unauthorized("authorization", "unknown API key")
    if key.revoked_at is not None:
        logger.warning("authentication failed: revoked key %s… (%s)", key.prefix, key.name)
        raise Unauthorized("authorization", "this API key was revoked")
    return key
