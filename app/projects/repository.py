"""SQL for projects."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app.db.models import Project, Round


def add(session: Session, project: Project) -> Project:
    session.add(project)
    session.flush()
    return project


def get(session: Session, project_id: int) -> Project | None:
    return session.get(Project, project_id)


def by_name(session: Session, name: str) -> Project | None:
    return session.scalars(select(Project).where(Project.name == name)).one_or_none()


def page(session: Session, *, after_id: int, limit: int) -> list[Project]:
    stmt = select(Project).where(Project.id > after_id).order_by(Project.id).limit(limit)
    return list(session.scalars(stmt))


def remove(session: Session, project_id: int) -> None:
    """Delete the project; its rows go with it (ON DELETE CASCADE)."""
    session.execute(
        delete(Project).where(Project.id == project_id).execution_options(synchronize_session=False)
    )


def claim_set_drawing(session: Session, project_id: int, now: datetime) -> bool:
    """Mark the validation and seed sets as drawn; True only for the one caller that changed the row."""
    result = session.execute(
        update(Project)
        .where(Project.id == project_id, Project.sets_drawn_at.is_(None))
        .values(sets_drawn_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def lock_set_drawing(session: Session, project_id: int) -> datetime | None:
    """The project's ``sets_drawn_at`` as committed, its row locked until the transaction ends
    (PostgreSQL ``FOR UPDATE``; SQLite's ``BEGIN IMMEDIATE`` already serialises writers), so that two
    uploads do not redraw the sets at once."""
    stmt = select(Project.sets_drawn_at).where(Project.id == project_id).with_for_update()
    return session.execute(stmt).scalar_one_or_none()


def clear_set_drawing(session: Session, project_id: int) -> None:
    """Mark the validation and seed sets as not drawn (their provisional draw was undone)."""
    session.execute(
        update(Project)
        .where(Project.id == project_id)
        .values(sets_drawn_at=None)
        .execution_options(synchronize_session=False)
    )


def has_rounds(session: Session, project_id: int) -> bool:
    """Whether any round (whatever its status) was ever started in the project."""
    return session.scalar(select(Round.id).where(Round.project_id == project_id).limit(1)) is not None
