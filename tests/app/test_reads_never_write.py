"""A GET never writes (issue 12): every GET route of the service leaves every table as it was.

The routes come from the OpenAPI schema (so a new GET route is covered without editing this file) plus
the few left out of it (the dashboard page and its static files, the Label Studio backend's bare path).
The project behind them has items, answered and open queries, a succeeded round with auto-labels and a
Label Studio connection, so that the reads go through their real code, not their 404s. The sets'
draw happens where the pool changes (an upload), so a project whose items never got a draw (stored
before that rule, here undone by hand) must still read as such: GET /queue must not draw.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db.base import Base
from app.db.models import Project
from app.labels.queue_service import undo_open_draw
from tests.app.conftest import Api, MakeProject, blobs, ready_project, upload_npz

NOT_IN_SCHEMA = (
    "/dashboard",
    "/dashboard/static/dashboard.js",
    "/integrations/label-studio/{project_id}/{secret}",
)


def database_digest(factory: sessionmaker[Session]) -> dict[str, str]:
    """A digest of every table's rows (order-independent), by table."""
    digests = {}
    with factory() as session:
        for table in Base.metadata.sorted_tables:
            rows = sorted(repr(tuple(row)) for row in session.execute(select(table)))
            digests[table.name] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
        session.rollback()
    return digests


def get_paths(api: Api) -> list[str]:
    schema = api.get("/api/v1/openapi.json").json()
    paths = [path for path, operations in schema["paths"].items() if "get" in operations]
    return sorted({*paths, *NOT_IN_SCHEMA})


def fill(path: str, values: dict[str, Any]) -> str:
    """The path with its parameters filled in (an id of 1 for a parameter this test has no row for)."""
    return re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), 1)), path)


def test_every_get_route_leaves_the_database_unchanged(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    pid = ready_project(api, make_project, 300)
    round_id = api.run_round(pid)["id"]
    connection = api.post(f"/api/v1/projects/{pid}/label-studio/connection").json()
    secret = connection["url"].rstrip("/").rsplit("/", 1)[-1]
    values = {"project_id": pid, "round_id": round_id, "secret": secret, "name": "dashboard.js"}
    paths = get_paths(api)
    assert "/api/v1/projects/{project_id}/queue" in paths and len(paths) > 20

    before = database_digest(session_factory)
    statuses = {}
    for path in paths:
        response = api.get(fill(path, values))
        statuses[path] = response.status_code
        assert response.status_code < 500, (path, response.text)
    assert database_digest(session_factory) == before, statuses
    known = [p for p in paths if set(re.findall(r"\{(\w+)\}", p)) <= set(values)]
    refused = [p for p in known if statuses[p] != 200]
    assert len(refused) <= 2, statuses  # the reads ran, not their refusals


def test_reading_the_queue_of_an_undrawn_project_draws_nothing(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    pid = make_project(settings={"validation_size": 20, "seed_size": 10})["id"]
    upload_npz(api, pid, *blobs(100))
    with session_factory() as session:
        project = session.get(Project, pid)
        assert project is not None and project.sets_drawn_at is not None  # the upload drew them
        undo_open_draw(session, project)  # as if the items predated drawing at upload
        session.commit()
    before = database_digest(session_factory)
    page = api.get(f"/api/v1/projects/{pid}/queue").json()
    assert page["items"] == [] and page["open_validation"] == 0
    assert api.get(f"/api/v1/projects/{pid}").json()["sets_drawn_at"] is None
    assert database_digest(session_factory) == before
    # a POST draws them: half of validation_size (the other half comes inside the stratum later)
    assert api.post(f"/api/v1/projects/{pid}/simulate").json()["validation"] == 10
