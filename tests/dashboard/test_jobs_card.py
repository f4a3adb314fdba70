"""The dashboard's uploads card in a real browser (headless Chromium, as ``tests/dashboard``): an upload
encoded in the background appears on the project's page with its progress, what it stored and the item
it refused; a project without jobs shows no card and no console error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from examples.demo import Server, create_api_key, free_port, start_server
from tests.dashboard.browser import browser, open_page, wait_ready  # noqa: F401 (the fixture)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    server = start_server(tmp_path_factory.mktemp("jobs-dashboard"), free_port())
    try:
        yield server, create_api_key(server.env, "jobs-dashboard")
    finally:
        server.stop()


def test_the_uploads_card_shows_a_job(browser: Any, service: tuple[Server, str]) -> None:  # noqa: F811
    server, key = service
    api = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60.0)
    body = {"classes": ["neg", "pos"], "data_kind": "text", "settings": {"encoder": "hashing:16"}}
    project = api.post("/api/v1/projects", json={"name": "jobs-card", **body}).raise_for_status().json()
    plain = api.post("/api/v1/projects", json={"name": "no-jobs", **body}).raise_for_status().json()
    rows = [
        json.dumps({"id": f"t{i}", "text": f"text {i}", "label": "maybe" if i == 2 else i % 2})
        for i in range(30)
    ]
    started = api.post(
        f"/api/v1/projects/{project['id']}/items/texts/upload",
        params={"format": "jsonl", "id_column": "id", "label_column": "label", "background": "true"},
        content="\n".join(rows).encode(),
    )
    assert started.status_code == 202, started.text

    context, page, errors = open_page(
        browser, f"{server.base_url}/dashboard?project={project['id']}#key={key}"
    )
    try:
        wait_ready(page)
        page.wait_for_selector("[data-testid=job-row][data-status=succeeded]", timeout=30_000)
        shown = page.inner_text("[data-testid=job-row]")
        assert "30 / 30" in shown and "29 stored" in shown and "1 refused, first t2: unknown class" in shown
        assert errors.messages == []
    finally:
        context.close()
    context, page, errors = open_page(browser, f"{server.base_url}/dashboard?project={plain['id']}#key={key}")
    try:
        wait_ready(page)
        page.wait_for_timeout(1_000)  # the card's request has answered by now
        assert page.locator("[data-testid=job-row]").count() == 0 and errors.messages == []
    finally:
        context.close()
