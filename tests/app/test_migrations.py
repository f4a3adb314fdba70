"""The migrations build the models' schema on both databases, go down cleanly, and the constraints the
service relies on hold (one active round per project, one auto-label per item)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.db.base import Base
from app.db.migrate import downgrade, upgrade
from app.db.models import AutoLabel, Item, Project, Round
from app.db.session import make_engine
from app.settings import Settings
from tests.app.conftest import POSTGRES_URL


@pytest.fixture
def empty_url(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty database of the same kind as ``database_url`` (no migrations run)."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path_factory.mktemp('mig') / 'empty.sqlite'}"
        return
    schema = f"tbal_mig_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def test_migrations_match_the_models_and_go_down(empty_url: str) -> None:
    settings = Settings(database_url=empty_url)
    upgrade(settings)
    engine = make_engine(settings)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
            assert diff == []
        downgrade(settings)
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(settings)
        assert {"projects", "items", "auto_labels", "rounds"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_one_active_round_per_project(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        project = Project(name="p", classes=["a", "b"], data_kind="features", input_shape=[2], settings={})
        session.add(project)
        session.flush()
        session.add(Round(project_id=project.id, index=0, status="succeeded"))
        session.add(Round(project_id=project.id, index=1, status="queued"))
        session.commit()
        session.add(Round(project_id=project.id, index=2, status="queued"))
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        session.add(Round(project_id=project.id, index=1, status="failed"))  # same index
        with pytest.raises(IntegrityError):
            session.commit()


def test_one_auto_label_per_item_and_cascading_delete(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        project = Project(name="p", classes=["a", "b"], data_kind="features", input_shape=[2], settings={})
        session.add(project)
        session.flush()
        item = Item(project_id=project.id, external_id="x", data=b"\x00" * 8)
        round_ = Round(project_id=project.id, index=0)
        session.add_all([item, round_])
        session.flush()
        session.add(
            AutoLabel(project_id=project.id, item_id=item.id, round_id=round_.id, label=0, confidence=0.9)
        )
        session.commit()
        session.add(
            AutoLabel(project_id=project.id, item_id=item.id, round_id=round_.id, label=1, confidence=0.8)
        )
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        session.delete(project)
        session.commit()
        assert session.execute(text("SELECT count(*) FROM auto_labels")).scalar_one() == 0
        assert session.execute(text("SELECT count(*) FROM items")).scalar_one() == 0
