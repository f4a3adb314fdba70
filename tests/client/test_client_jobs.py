"""The client and ingest jobs: an upload chunk the service answers with a job (202) is waited for and
counted like a 200; ``get_job`` / ``wait_job`` read what the API sends (checked against its OpenAPI
schema, like every other answer the client reads); refused items raise JobFailed naming the first."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tbal_client import TBALClient
from tbal_client.jobs import Job, JobFailed
from tests.client.openapi_checks import API, Schema, answer_schema, assert_reads_match
from tests.in_process import as_httpx_client


@pytest.fixture
def small_tb(service_settings: Settings, api_key: str) -> Iterator[TBALClient]:
    """The client over a service that makes a job of any upload of more than 5 items."""
    settings = service_settings.model_copy(update={"sync_ingest_max_items": 5, "ingest_job_batch": 4})
    with TestClient(create_app(settings)) as http:
        yield TBALClient(http=as_httpx_client(http), key=api_key, sleep=lambda s: time.sleep(min(s, 0.02)))


def test_the_job_answer_is_what_the_client_reads(spec: Schema) -> None:
    path = f"{API}/projects/{{project_id}}/jobs/{{job_id}}"
    assert_reads_match(spec, answer_schema(spec, "GET", path), Job.from_json)
    upload = spec["paths"][f"{API}/projects/{{project_id}}/items/texts/upload"]["post"]["responses"]
    assert upload["202"]["content"]["application/json"]["schema"]["$ref"].endswith("/JobRead")


def test_uploads_wait_for_their_job(small_tb: TBALClient, tmp_path: Path) -> None:
    project = small_tb.create_project(
        "texts", classes=["neg", "pos"], data_kind="text", settings={"encoder": "hashing:16"}
    )
    texts = [f"sentence {i}" for i in range(12)]
    result = small_tb.upload_texts(project.id, texts, ground_truth=[i % 2 for i in range(12)], chunk_rows=8)
    assert (result.received, result.inserted, result.skipped, result.ground_truth_added) == (12, 12, 0, 12)
    again = small_tb.upload_texts(project.id, texts, chunk_rows=100)  # one chunk of 12: a job
    assert (again.inserted, again.skipped) == (0, 12)

    with pytest.raises(JobFailed, match="1 items refused; first: x1: unknown class"):
        small_tb.upload_texts(project.id, texts, ground_truth=[0, "maybe", *[1] * 10], id_prefix="x")
    jobs = small_tb._json("GET", f"{API}/projects/{project.id}/jobs")["items"]
    job = small_tb.wait_job(project.id, jobs[0]["id"], raise_on_errors=False)
    assert (job.status, job.total, job.done, job.inserted, job.n_errors) == ("succeeded", 12, 12, 11, 1)
    assert job.errors[0].item == "x1" and small_tb.get_job(project.id, job.id) == job
