"""SQL for API keys and the projects a non-admin key may use."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from app.db.models import ApiKey, ApiKeyProject, Project


def add(
    session: Session,
    *,
    name: str,
    prefix: str,
    key_hash: str,
    is_admin: bool = True,
    project_ids: Sequence[int] = (),
) -> ApiKey:
    key = ApiKey(name=name, prefix=prefix, key_hash=key_hash, is_admin=is_admin)
    session.add(key)
    session.flush()
    if project_ids:
        session.execute(
            insert(ApiKeyProject), [{"key_id": key.id, "project_id": p} for p in sorted(set(project_ids))]
        )
    return key


def by_hash(session: Session, key_hash: str) -> ApiKey | None:
    return session.scalars(select(ApiKey).where(ApiKey.key_hash == key_hash)).one_or_none()


def get(session: Session, key_id: int) -> ApiKey | None:
    return session.get(ApiKey, key_id)


def list_all(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def project_ids(session: Session, key_id: int) -> list[int]:
    stmt = select(ApiKeyProject.project_id).where(ApiKeyProject.key_id == key_id)
    return list(session.scalars(stmt.order_by(ApiKeyProject.project_id)))


def project_ids_by_key(session: Session, key_ids: Sequence[int]) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {k: [] for k in key_ids}
    if not key_ids:
        return found
    stmt = (
        select(ApiKeyProject.key_id, ApiKeyProject.project_id)
        .where(ApiKeyProject.key_id.in_(list(key_ids)))
        .order_by(ApiKeyProject.key_id, ApiKeyProject.project_id)
    )
    for key_id, project_id in session.execute(stmt):
        found[key_id].append(project_id)
    return found


def existing_projects(session: Session, ids: Sequence[int]) -> set[int]:
    if not ids:
        return set()
    return set(session.scalars(select(Project.id).where(Project.id.in_(list(ids)))))


def projects_page(session: Session, key_id: int, *, after_id: int, limit: int) -> list[Project]:
    """The projects a non-admin key may use, by id (keyset page)."""
    stmt = (
        select(Project)
        .join(ApiKeyProject, ApiKeyProject.project_id == Project.id)
        .where(ApiKeyProject.key_id == key_id, Project.id > after_id)
        .order_by(Project.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def revoke(session: Session, key_id: int, when: datetime) -> bool:
    result = session.execute(
        update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=when)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
