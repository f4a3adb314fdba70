"""The ``tbal.ingest_job`` task called eagerly (SQLite and PostgreSQL): the API, with a broker, stores a
large upload and sends the job to the ``gpu`` queue; the task encodes it; a second delivery stores nothing
twice; a delivery that finds the job running elsewhere looks again later."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text, update
from sqlalchemy.orm import Session, sessionmaker

import worker.jobs  # noqa: F401  (registers tbal.ingest_job on every application)
from app.db.base import utcnow
from app.db.models import IngestJob
from app.items.jobs_service import INGEST_JOB_TASK, JOB_QUEUE
from tests.worker.conftest import Client
from worker.celery_app import TBALCelery


def _text_job(client: Client, n: int = 30) -> tuple[int, int]:
    created = client.post(
        "/api/v1/projects",
        json={
            "name": "texts",
            "classes": ["neg", "pos"],
            "data_kind": "text",
            "settings": {"encoder": "hashing:32"},
        },
    )
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    rows = [json.dumps({"id": f"s{i}", "text": f"sentence number {i}", "label": i % 2}) for i in range(n)]
    started = client.post(
        f"/api/v1/projects/{pid}/items/texts/upload",
        params={"format": "jsonl", "id_column": "id", "label_column": "label", "background": "true"},
        content="\n".join(rows).encode(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "queued"  # nobody consumes the in-memory broker
    return pid, int(started.json()["id"])


def _items(factory: sessionmaker[Session], pid: int) -> int:
    with factory() as session:
        return int(
            session.execute(text("SELECT count(*) FROM items WHERE project_id = :p"), {"p": pid}).scalar_one()
        )


def test_the_task_encodes_the_job_once(
    client: Client, celery: TBALCelery, session_factory: sessionmaker[Session]
) -> None:
    pid, job_id = _text_job(client)
    task = celery.tasks[INGEST_JOB_TASK]
    assert task.apply(args=[job_id]).successful()
    body = client.get(f"/api/v1/projects/{pid}/jobs/{job_id}").json()
    assert (body["status"], body["inserted"], body["ground_truth_added"], body["attempts"]) == (
        "succeeded",
        30,
        30,
        1,
    )
    assert task.apply(args=[job_id]).successful()  # delivered again
    assert client.get(f"/api/v1/projects/{pid}/jobs/{job_id}").json() == body
    assert _items(session_factory, pid) == 30
    assert JOB_QUEUE == "gpu"


def test_a_job_running_elsewhere_is_watched(
    client: Client,
    celery: TBALCelery,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pid, job_id = _text_job(client, n=5)
    with session_factory() as session:  # another delivery holds it, alive
        session.execute(
            update(IngestJob).where(IngestJob.id == job_id).values(status="running", heartbeat_at=utcnow())
        )
        session.commit()
    task = celery.tasks[INGEST_JOB_TASK]
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(task, "apply_async", lambda **kw: sent.append(kw))
    assert task.apply(args=[job_id]).successful()
    assert _items(session_factory, pid) == 0
    assert sent and sent[0]["args"] == [job_id] and sent[0]["countdown"] > 0
    with session_factory() as session:  # its runner died: the heartbeat went stale
        stale = utcnow() - timedelta(seconds=celery.tbal_settings.round_stale_after_s + 1)
        session.execute(update(IngestJob).where(IngestJob.id == job_id).values(heartbeat_at=stale))
        session.commit()
    assert task.apply(args=[job_id]).successful()
    assert client.get(f"/api/v1/projects/{pid}/jobs/{job_id}").json()["status"] == "succeeded"
    assert _items(session_factory, pid) == 5


def test_the_task_refuses_a_bad_id(celery: TBALCelery) -> None:
    result = celery.tasks[INGEST_JOB_TASK].apply(args=["7"])
    assert result.failed() and isinstance(result.result, TypeError)
