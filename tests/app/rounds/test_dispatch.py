"""Dispatch: Celery messages carry only the round id; a broker that is down gives 503 and a failed round;
two rounds requested at once for one project: exactly one is created."""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.errors import Conflict
from app.main import create_app
from app.rounds.dispatch import CeleryDispatcher
from app.rounds.service import start_round
from app.services.projects import get_project
from app.settings import Settings
from tests.app.conftest import Api, RecordingDispatcher, count_rows, ready_project

REDIS_URL = os.environ.get("TBAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
MakeProject = Callable[..., dict[str, Any]]


def _redis() -> Any:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis unreachable at {REDIS_URL}: {exc}")
        pytest.skip(f"Redis unreachable at {REDIS_URL}: {exc}")
    return client


def test_celery_dispatcher_sends_the_round_id_as_json() -> None:
    client = _redis()
    queue = f"tbal-test-{os.getpid()}"
    client.delete(queue)
    dispatcher = CeleryDispatcher(
        Settings(broker_url=REDIS_URL, round_queue="gpu").model_copy(update={"round_queue": queue})
    )
    try:
        dispatcher.enqueue_round(42)
        raw = client.lpop(queue)
        assert raw is not None
        message = json.loads(raw)
        assert message["headers"]["task"] == "tbal.run_round"
        assert message["content-type"] == "application/json"
        args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        assert args == [42] and kwargs == {}
    finally:
        dispatcher.close()
        client.delete(queue)


def test_broker_down_is_503_and_the_round_fails(
    settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    from fastapi.testclient import TestClient

    from app.services.api_keys import create_key

    down = settings.model_copy(update={"broker_url": "redis://127.0.0.1:9/0"})
    _key, secret = create_key(session_factory, "t")
    with TestClient(create_app(down)) as client:
        api = Api(client=client, headers={"Authorization": f"Bearer {secret}"}, settings=down)

        def make(**overrides: Any) -> dict[str, Any]:
            body = {"name": "p", "classes": ["a", "b", "c"], "data_kind": "features", "input_shape": [4]}
            return dict(api.post("/api/v1/projects", json={**body, **overrides}).json())

        pid = ready_project(api, make)
        response = api.post(f"/api/v1/projects/{pid}/rounds")
        assert response.status_code == 503
        assert response.json()["detail"]["field"] == "broker"
        rounds = api.get(f"/api/v1/projects/{pid}/rounds").json()["items"]
        assert [r["status"] for r in rounds] == ["failed"]
        assert rounds[0]["error"].startswith("could not enqueue")


def test_two_rounds_requested_at_once_create_one(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    pid = ready_project(api, make_project)
    dispatcher = RecordingDispatcher()
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def request() -> None:
        with session_factory() as session:
            project = get_project(session, pid)
            session.commit()  # hold no lock while waiting for the others
            barrier.wait(timeout=30)
            try:
                start_round(session, project, dispatcher)
                outcomes.append("started")
            except Conflict:
                outcomes.append("conflict")

    threads = [threading.Thread(target=request) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "conflict", "conflict", "started"]
    assert count_rows(session_factory, "rounds") == 1 and len(dispatcher.enqueued) == 1
