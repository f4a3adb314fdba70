"""Ingest jobs in production shape: PostgreSQL + Redis + a real Celery worker (``tbal worker``, the
worker of tests/e2e/test_postgres_redis_celery.py) + the API with a broker.

A text upload larger than ``sync_ingest_max_items`` answers 202 at once; the worker encodes it; the
stored features equal the encoder's own. An image upload with one broken file stores the others and names
it. The task delivered again afterwards stores nothing twice.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import make_engine, make_session_factory
from app.items.jobs_service import INGEST_JOB_TASK
from app.main import create_app
from app.projects.keys_service import create_key
from app.settings import Settings
from tbal.encoders import make_text_encoder
from tests.e2e.conftest import start_worker, stop_worker, worker_env
from worker.celery_app import TBALCelery, make_celery

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

API = "/api/v1"


@dataclass
class Stack:
    client: TestClient
    celery: TBALCelery
    factory: sessionmaker[Session]
    log: Any

    def wait_job(self, pid: int, job_id: int, timeout: float = 180.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.client.get(f"{API}/projects/{pid}/jobs/{job_id}").json()
            if body["status"] in ("succeeded", "failed"):
                return dict(body)
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not finish in {timeout} s:\n{self.log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def stack(postgres_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("jobs")
    settings = Settings(
        database_url=postgres_url,
        broker_url=redis_url,
        artifacts_dir=tmp / "artifacts",
        upload_dir=tmp / "uploads",
        train_device="cpu",
        torch_threads=1,
        db_pool_size=4,
        sync_ingest_max_items=100,
        ingest_job_batch=256,
    )
    celery = make_celery(settings)
    log_path = tmp / "worker.log"
    worker = start_worker(worker_env(settings), log_path, celery)
    engine = make_engine(settings)
    factory = make_session_factory(engine)
    _key, secret = create_key(factory, "e2e-jobs")
    try:
        with TestClient(create_app(settings)) as client:
            client.headers["Authorization"] = f"Bearer {secret}"
            yield Stack(client, celery, factory, log_path)
    finally:
        stop_worker(worker)
        celery.close()
        engine.dispose()


def _project(stack: Stack, **body: Any) -> int:
    created = stack.client.post(f"{API}/projects", json={"name": f"j{time.monotonic_ns()}", **body})
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


def test_a_text_upload_is_encoded_by_the_worker_once(stack: Stack) -> None:
    pid = _project(stack, classes=["neg", "pos"], data_kind="text", settings={"encoder": "hashing:64"})
    texts = [f"sentence {i} is {'good' if i % 2 else 'bad'}" for i in range(1_000)]
    rows = [json.dumps({"id": f"s{i}", "text": t, "label": i % 2}) for i, t in enumerate(texts)]
    started = stack.client.post(
        f"{API}/projects/{pid}/items/texts/upload",
        params={"format": "jsonl", "id_column": "id", "label_column": "label"},
        content="\n".join(rows).encode(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert started.status_code == 202, started.text  # more than sync_ingest_max_items
    job = stack.wait_job(pid, started.json()["id"])
    assert (job["status"], job["inserted"], job["n_errors"], job["attempts"]) == ("succeeded", 1_000, 0, 1), (
        job
    )
    with stack.factory() as session:
        data = session.execute(
            text("SELECT data FROM items WHERE project_id = :p ORDER BY id"), {"p": pid}
        ).scalars()
        X = np.stack([np.frombuffer(bytes(d), dtype="<f4") for d in data])
    np.testing.assert_allclose(X, make_text_encoder("hashing:64").encode(texts), rtol=1e-6)

    stack.celery.send_task(INGEST_JOB_TASK, args=[job["id"]], queue="gpu")  # delivered again
    time.sleep(2.0)
    assert stack.client.get(f"{API}/projects/{pid}/jobs/{job['id']}").json() == job
    with stack.factory() as session:
        n = session.execute(text("SELECT count(*) FROM items WHERE project_id = :p"), {"p": pid}).scalar_one()
    assert n == 1_000


def test_an_image_upload_names_its_broken_file(stack: Stack) -> None:
    pid = _project(stack, classes=["cat", "dog"], data_kind="image", input_shape=[8, 8, 3])
    rng = np.random.default_rng(1)
    parts = []
    for i in range(150):
        out = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)).save(out, format="PNG")
        parts.append(("files", (f"{'cat' if i % 2 else 'dog'}/{i}.png", out.getvalue(), "image/png")))
    parts.insert(7, ("files", ("dog/truncated.png", b"\x89PNG\r\n\x1a\n", "image/png")))
    started = stack.client.post(
        f"{API}/projects/{pid}/items/images", params={"labels_from_folders": "true"}, files=parts
    )
    assert started.status_code == 202, started.text
    job = stack.wait_job(pid, started.json()["id"])
    assert (job["status"], job["inserted"], job["ground_truth_added"], job["n_errors"]) == (
        "succeeded",
        150,
        150,
        1,
    )
    assert job["errors"][0]["item"] == "dog/truncated.png" and job["errors"][0]["index"] == 7
