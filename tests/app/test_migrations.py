"""The migrations build the models' schema on both databases, go down cleanly, and the constraints the
service relies on hold (one active round per project, one auto-label per item)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import JSON, Engine, create_engine, delete, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.db.base import Base
from app.db.migrate import downgrade, upgrade
from app.db.models import AutoLabel, IngestJob, Item, Project, Round
from app.db.session import make_engine
from app.items.jobs_chunks import Staged, unpack
from app.items.jobs_run import execute_job
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


def _auto_label_fks(engine: Engine) -> dict[str, str | None]:
    """Referred table → ON DELETE rule of the foreign keys of ``auto_labels``."""
    fks = inspect(engine).get_foreign_keys("auto_labels")
    return {fk["referred_table"]: (fk.get("options") or {}).get("ondelete") for fk in fks}


def _project_with_auto_label(session: Session, name: str) -> tuple[int, int]:
    """A project with one item, one round and one auto-label; returns (project id, item id)."""
    project = Project(name=name, classes=["a", "b"], data_kind="features", input_shape=[2], settings={})
    session.add(project)
    session.flush()
    item = Item(project_id=project.id, external_id="x", data=b"\x00" * 8)
    round_ = Round(project_id=project.id, index=0, status="succeeded")
    session.add_all([item, round_])
    session.flush()
    session.add(
        AutoLabel(project_id=project.id, item_id=item.id, round_id=round_.id, label=0, confidence=0.9)
    )
    ids = project.id, item.id  # read before the commit expires them: a refresh would select columns
    session.commit()  # that later migrations add (projects.base_config, 0008) from an older schema
    return ids


def _count_auto_labels(session: Session) -> int:
    return session.execute(text("SELECT count(*) FROM auto_labels")).scalar_one()


def test_0004_drops_the_item_and_round_keys_and_goes_down(empty_url: str) -> None:
    """0004 keeps the rows, the unique constraint and the project's cascade; its downgrade removes rows
    that the restored keys would reject and restores both keys with ON DELETE CASCADE."""
    settings = Settings(database_url=empty_url)
    upgrade(settings, "0003")
    engine = make_engine(settings)
    try:
        assert _auto_label_fks(engine) == {"projects": "CASCADE", "items": "CASCADE", "rounds": "CASCADE"}
        with Session(engine) as session:
            kept_project, kept_item = _project_with_auto_label(session, "kept")
        upgrade(settings, "0004")
        assert _auto_label_fks(engine) == {"projects": "CASCADE"}
        assert {"project_id", "item_id"} in [
            set(u["column_names"]) for u in inspect(engine).get_unique_constraints("auto_labels")
        ]
        with Session(engine) as session:
            assert _count_auto_labels(session) == 1
            # Without the keys an orphan row can exist (no code path makes one); the downgrade drops it.
            session.execute(
                text(
                    "INSERT INTO auto_labels (project_id, item_id, round_id, label, confidence, created_at) "
                    "VALUES (:p, :i, 0, 1, 0.5, CURRENT_TIMESTAMP)"
                ),
                {"p": kept_project, "i": kept_item + 1000},
            )
            session.commit()
            assert _count_auto_labels(session) == 2
        downgrade(settings, "0003")
        assert _auto_label_fks(engine) == {"projects": "CASCADE", "items": "CASCADE", "rounds": "CASCADE"}
        with Session(engine) as session:
            assert session.execute(text("SELECT item_id FROM auto_labels")).scalars().all() == [kept_item]
    finally:
        engine.dispose()


def test_deleting_a_project_removes_its_auto_labels_without_item_keys(
    session_factory: sessionmaker[Session],
) -> None:
    """At head, the project's cascade alone removes its auto-labels (and its items and rounds); another
    project's rows stay."""
    with session_factory() as session:
        gone, _ = _project_with_auto_label(session, "gone")
        _, kept_item = _project_with_auto_label(session, "kept")
        session.execute(delete(Project).where(Project.id == gone))
        session.commit()
        assert session.execute(text("SELECT item_id FROM auto_labels")).scalars().all() == [kept_item]
        assert session.execute(text("SELECT count(*) FROM items")).scalar_one() == 1
        assert session.execute(text("SELECT count(*) FROM rounds")).scalar_one() == 1


SERVICE_DIRS = ("app", "worker")
SINGLE_ROW_DELETES = re.compile(
    r"delete\(\s*(Item|Round|AutoLabel)\b|DELETE\s+FROM\s+(items|rounds|auto_labels)\b", re.IGNORECASE
)


def test_no_code_path_deletes_items_rounds_or_auto_labels_alone() -> None:
    """0004's premise: with no foreign keys from ``auto_labels`` to ``items`` and ``rounds``, only the
    project's cascade may delete those rows. A path deleting them by themselves must also delete the
    matching auto-labels in its transaction (then extend this test to check it)."""
    root = Path(__file__).resolve().parents[2]
    hits = [
        f"{path.relative_to(root)}:{number}"
        for folder in SERVICE_DIRS
        for path in sorted((root / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if SINGLE_ROW_DELETES.search(line)
    ]
    assert hits == []


def test_0009_converts_staged_items_to_chunks_and_back_and_the_job_runs(empty_url: str) -> None:
    """Items a job staged one a row before 0009 become chunks of consecutive seqs (a gap that another
    batch left starts a new chunk) holding the same items; the downgrade gives the rows back; after the
    upgrade the job runs and stores them, its errors naming the items by their place in the upload."""
    settings = Settings(database_url=empty_url)
    upgrade(settings, "0008")
    engine = make_engine(settings)
    try:
        with Session(engine) as session:
            project = Project(
                name="old job",
                classes=["neg", "pos"],
                data_kind="text",
                input_shape=[16],
                settings={"encoder": "hashing:16"},
            )
            session.add(project)
            session.flush()
            job_id = session.execute(
                text(
                    "INSERT INTO ingest_jobs (project_id, kind, status, total, done, inserted, skipped, "
                    "ground_truth_added, n_errors, errors, attempts, created_at) VALUES "
                    "(:p, 'texts', 'queued', 10, 2, 2, 0, 2, 0, '[]', 1, CURRENT_TIMESTAMP) RETURNING id"
                ),
                {"p": project.id},
            ).scalar_one()
            pid = project.id
            rows: list[tuple[int, str, str, str | int | None]] = [
                (seq, f"r{seq}", f"sentence number {seq}", "pos" if seq % 2 else 0) for seq in range(2, 10)
            ]
            rows[3] = (5, "r5", "", None)  # an empty text: the job's per-item error
            del rows[2]  # seq 4: another runner stored it
            for seq, ext, body, label in rows:
                session.execute(
                    text(
                        "INSERT INTO ingest_job_items (job_id, seq, external_id, text, label) "
                        "VALUES (:j, :s, :e, :t, :l)"
                    ),
                    {"j": job_id, "s": seq, "e": ext, "t": body, "l": json.dumps(label)},
                )
            session.commit()
        staged = [Staged(seq, ext, body, None, label) for seq, ext, body, label in rows]
        upgrade(settings, "0009")
        with Session(engine) as session:
            chunks = session.execute(
                text("SELECT seq, n, data FROM ingest_job_chunks WHERE job_id = :j ORDER BY seq"),
                {"j": job_id},
            ).all()
            assert [(c.seq, c.n) for c in chunks] == [(2, 2), (5, 5)]
            assert [item for c in chunks for item in unpack(c.seq, bytes(c.data))] == staged
        downgrade(settings, "0008")
        with Session(engine) as session:
            back = session.execute(
                text("SELECT seq, external_id, text, data, label FROM ingest_job_items ORDER BY seq").columns(
                    label=JSON
                )
            ).all()
            assert [tuple(r) for r in back] == [tuple(s) for s in staged]
        upgrade(settings)
        assert execute_job(job_id, sessionmaker(engine, expire_on_commit=False), settings) == "succeeded"
        with Session(engine) as session:
            job = session.get(IngestJob, job_id)
            assert job is not None and (job.done, job.inserted, job.n_errors) == (9, 8, 1)
            assert [e["index"] for e in job.errors] == [5]
            stored = (
                session.execute(
                    text("SELECT external_id FROM items WHERE project_id = :p ORDER BY id"), {"p": pid}
                )
                .scalars()
                .all()
            )
            assert stored == [f"r{seq}" for seq in (2, 3, 6, 7, 8, 9)]
    finally:
        engine.dispose()
