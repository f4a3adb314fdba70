"""Run the Alembic migrations from code (``tbal migrate``, ``tbal serve`` on SQLite, the tests)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from app.db.session import make_engine
from app.settings import Settings


def migrations_dir() -> Path:
    """The ``migrations`` package folder (in the repository, or installed beside ``app``)."""
    spec = importlib.util.find_spec("migrations")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the 'migrations' package is not importable; install tbal with its migrations")
    return Path(next(iter(spec.submodule_search_locations)))


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["configure_logger"] = False
    return config


def revisions(engine: Engine) -> tuple[str | None, str | None]:
    """(the database's current revision, None when never migrated; the newest revision there is)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    return current, head


def upgrade(settings: Settings, revision: str = "head") -> None:
    """``alembic upgrade <revision>`` on ``settings.database_url``."""
    engine = make_engine(settings)
    try:
        with engine.connect() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            connection.commit()
    finally:
        engine.dispose()


def downgrade(settings: Settings, revision: str = "base") -> None:
    """``alembic downgrade <revision>`` (the tests check that the migrations also go down)."""
    engine = make_engine(settings)
    try:
        with engine.connect() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, revision)
            connection.commit()
    finally:
        engine.dispose()
