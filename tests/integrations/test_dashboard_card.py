"""The dashboard's Label Studio card in a real browser (headless Chromium, as ``tests/dashboard``): a
refused ``/setup`` appears on the project's page with its reason; a project without a connection shows
no card and no console error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from examples.demo import Server, create_api_key, free_port, start_server
from tests.dashboard.browser import browser, open_page, wait_ready  # noqa: F401 (the fixture)

pytestmark = pytest.mark.slow

CONFIG = (
    '<View><Text name="text" value="$text"/><Choices name="label" toName="text" choice="single">'
    '<Choice value="Positive"/><Choice value="unclear"/></Choices></View>'
)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    server = start_server(tmp_path_factory.mktemp("ls-dashboard"), free_port())
    try:
        yield server, create_api_key(server.env, "ls-dashboard")
    finally:
        server.stop()


def test_the_label_studio_card_shows_the_latest_errors(browser: Any, service: tuple[Server, str]) -> None:  # noqa: F811
    server, key = service
    api = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60.0)
    body = {"classes": ["Positive", "Negative"], "data_kind": "features", "input_shape": [4]}
    connected = api.post("/api/v1/projects", json={"name": "ls-card", **body}).raise_for_status().json()
    plain = api.post("/api/v1/projects", json={"name": "no-ls", **body}).raise_for_status().json()
    url = (
        api.post(f"/api/v1/projects/{connected['id']}/label-studio/connection")
        .raise_for_status()
        .json()["url"]
    )
    refused = httpx.post(f"{url}/setup", json={"schema": CONFIG}, timeout=60.0)
    assert refused.status_code == 422

    context, page, errors = open_page(
        browser, f"{server.base_url}/dashboard?project={connected['id']}#key={key}"
    )
    try:
        wait_ready(page)
        page.wait_for_selector("[data-testid=ls-errors]", timeout=30_000)
        shown = page.inner_text("[data-testid=ls-errors]")
        assert "setup 422" in shown and "choices that are not classes of the project: ['unclear']" in shown
        assert errors.messages == []
    finally:
        context.close()
    context, page, errors = open_page(browser, f"{server.base_url}/dashboard?project={plain['id']}#key={key}")
    try:
        wait_ready(page)
        page.wait_for_timeout(1_000)  # the card's request has answered by now
        assert page.locator("[data-testid=ls-errors]").count() == 0 and errors.messages == []
    finally:
        context.close()
