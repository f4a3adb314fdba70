"""Dispatch: Celery messages carry only the round id; a broker that is down gives 503 and a failed round;
two rounds requested at once for one project: exactly one is created. The dispatchers' public way for
other background work: ``InProcessDispatcher.submit`` (tracked by ``wait_idle``, errors logged),
``CeleryDispatcher.send_task``, and ``send_work`` on both, which rounds and ingest jobs share."""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.errors import Conflict
from app.main import create_app
from app.projects.service import get_project
from app.rounds.dispatch import RUN_ROUND_TASK, CeleryDispatcher, InProcessDispatcher
from app.rounds.service import start_round
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


def _pop_task(client: Any, queue: str) -> tuple[str, list[Any]]:
    """The oldest Celery message on ``queue`` (kombu pushes left, workers pop right): its task name and
    positional arguments (JSON)."""
    raw = client.rpop(queue)
    assert raw is not None, f"nothing on {queue}"
    message = json.loads(raw)
    assert message["content-type"] == "application/json"
    args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    assert kwargs == {}
    return message["headers"]["task"], args


def test_celery_dispatcher_sends_the_round_id_as_json() -> None:
    client = _redis()
    queue = f"tbal-test-{os.getpid()}"
    client.delete(queue)
    dispatcher = CeleryDispatcher(
        Settings(broker_url=REDIS_URL, round_queue="gpu").model_copy(update={"round_queue": queue})
    )
    try:
        dispatcher.enqueue_round(42)
        assert _pop_task(client, queue) == ("tbal.run_round", [42])
        # The public way for other work: any task, any queue, only JSON arguments travel.
        other = f"{queue}-jobs"
        dispatcher.send_task("tbal.test_task", (7, "x"), other)
        dispatcher.send_work(_never_here, 9, task="tbal.ingest_job", queue=other)
        assert _pop_task(client, other) == ("tbal.test_task", [7, "x"])
        assert _pop_task(client, other) == ("tbal.ingest_job", [9])
        assert client.llen(queue) == 0
    finally:
        dispatcher.close()
        client.delete(queue, f"{queue}-jobs")


def _never_here(work_id: int, factory: sessionmaker[Session], settings: Settings) -> None:
    raise AssertionError("in-process work run by a Celery dispatcher")


class _SentTasks(CeleryDispatcher):
    """A Celery dispatcher whose ``send_task`` records instead of reaching a broker."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.sent: list[tuple[str, list[Any], str]] = []

    def send_task(self, name: str, args: Sequence[object], queue: str) -> None:
        self.sent.append((name, list(args), queue))


def test_celery_rounds_and_work_go_through_send_task() -> None:
    dispatcher = _SentTasks(Settings(broker_url="redis://127.0.0.1:9/0", round_queue="gpu"))
    dispatcher.enqueue_round(3)
    dispatcher.send_work(_never_here, 4, task="tbal.ingest_job", queue="default")
    assert dispatcher.sent == [(RUN_ROUND_TASK, [3], "gpu"), ("tbal.ingest_job", [4], "default")]


def _in_process(workers: int = 2) -> InProcessDispatcher:
    return InProcessDispatcher(sessionmaker(), Settings(in_process_workers=workers))


def test_in_process_submit_is_waited_for_and_its_errors_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    dispatcher = _in_process()
    release = threading.Event()
    done: list[int] = []

    def slow(value: int) -> None:
        assert release.wait(timeout=30)
        done.append(value)

    def broken(value: int) -> None:
        raise RuntimeError(f"broken {value}")

    try:
        slow_future = dispatcher.submit(slow, 1)
        with caplog.at_level(logging.ERROR, logger="app.rounds.dispatch"):
            dispatcher.submit(broken, 2).result(timeout=30)  # logged, not raised
        assert dispatcher.wait_idle(timeout=0.05) is False  # `slow` still runs
        release.set()
        assert dispatcher.wait_idle(timeout=30) is True
        assert done == [1] and slow_future.done()
        assert [r.getMessage() for r in caplog.records] == ["background work broken(2) stopped with an error"]
    finally:
        release.set()
        dispatcher.close()


def test_in_process_rounds_and_work_share_submit() -> None:
    dispatcher = _in_process()
    submitted: list[tuple[Any, tuple[object, ...]]] = []
    real_submit = dispatcher.submit

    def recording_submit(fn: Callable[..., object], *args: object) -> Any:
        submitted.append((fn, args))
        return real_submit(lambda *_: None)  # record only: no round to run here

    dispatcher.submit = recording_submit  # type: ignore[method-assign]
    ran: list[tuple[int, Any, Any]] = []

    def work(work_id: int, factory: sessionmaker[Session], settings: Settings) -> None:
        ran.append((work_id, factory, settings))

    try:
        dispatcher.enqueue_round(5)
        dispatcher.send_work(work, 6, task="tbal.ingest_job", queue="default")
        assert dispatcher.wait_idle(timeout=30)
        (round_fn, round_args), (work_fn, work_args) = submitted
        assert round_fn == dispatcher._run_round and round_args == (5,)
        assert work_fn is work and work_args[0] == 6
    finally:
        dispatcher.close()
    # Without the recorder: the work runs in the pool with the dispatcher's factory and settings.
    dispatcher = _in_process()
    try:
        dispatcher.send_work(work, 8, task="tbal.ingest_job", queue="default")
        assert dispatcher.wait_idle(timeout=30)
        assert ran == [(8, dispatcher._factory, dispatcher._settings)]
    finally:
        dispatcher.close()


def test_broker_down_is_503_and_the_round_fails(
    settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    from fastapi.testclient import TestClient

    from app.projects.keys_service import create_key

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
