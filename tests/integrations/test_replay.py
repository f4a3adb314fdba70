"""Every request Label Studio 1.23.2 sent to an ML backend in a recorded session, replayed against tbal.

The recorded tasks carry only text; the replay adds ``data.features`` to each task (as a project whose
tasks carry feature vectors would), so that tbal can turn them into items. Requests of the recording's
second project (``/probe-prefix``, Basic auth) go to the same tbal project with a valid Basic header.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import HumanLabel, Item, LabelStudioConnection, Round
from tests.app.conftest import Api, RecordingDispatcher
from tests.integrations.conftest import CLASSES, LSProject, features_of, recorded_requests, train_first_model


def with_features(body: Any) -> Any:
    """The recorded body with ``data.features`` added to every task in it."""
    body = copy.deepcopy(body)
    tasks = list(body.get("tasks") or []) + ([body["task"]] if isinstance(body.get("task"), dict) else [])
    for task in tasks:
        task["data"]["features"] = features_of(int(task["id"]))
    return body


def shape(value: Any) -> Any:
    """The keys of a JSON value, recursively (lists by their first element)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__ if not isinstance(value, int | float) else "number"


def test_recorded_session_replays(
    api: Api,
    connected: Any,
    session_factory: sessionmaker[Session],
) -> None:
    # ε = 1 %: 150 validation labels certify nothing, so the first round keeps its validation set (an
    # auto-labeled region that covers it would remove it, and the Train button would then get a 409)
    project: LSProject = connected(epsilon=0.01)
    first = train_first_model(api, project)
    state = api.client.app.state.tbal  # type: ignore[attr-defined]
    recorder = RecordingDispatcher()
    real, state.dispatcher = state.dispatcher, recorder
    key = api.headers["Authorization"].removeprefix("Bearer ")
    basic = "Basic " + base64.b64encode(f"probe:{key}".encode()).decode()
    try:
        for request in recorded_requests():
            _replay(api, project, request, basic, first["model_version"])
    finally:
        state.dispatcher = real

    with session_factory() as session:
        items = {ext: i for ext, i in session.execute(select(Item.external_id, Item.id))}
        assert {f"ls-{t}" for t in range(1, 11)} <= set(items)  # tasks of predict and TASKS_CREATED
        labels = {
            h.item_id: h
            for h in session.scalars(select(HumanLabel).where(HumanLabel.source == "label-studio"))
        }
        assert items["ls-1"] not in labels  # annotation 1 was deleted (seq 18)
        positive = CLASSES.index("Positive")
        assert labels[items["ls-2"]].votes == {"ls-user-2": positive}  # created, then updated (seq 15, 17)
        assert labels[items["ls-8"]].votes == {"ls-user-1": positive}  # project 2, no Authorization (seq 41)
        assert labels[items["ls-2"]].distribution == [1.0, 0.0]
        assert len(labels) == 2
        rounds = session.scalars(select(Round).order_by(Round.index)).all()
        assert [r.status for r in rounds] == ["succeeded", "queued"]  # START_TRAINING (seq 16)
        assert recorder.enqueued == [rounds[1].id]
        row = session.get(LabelStudioConnection, project.id)
        assert row is not None and (row.from_name, row.to_name) == ("label", "text")


def _replay(api: Api, project: LSProject, request: dict[str, Any], basic: str, version: str) -> None:
    path = request["path"].removeprefix("/probe-prefix")
    headers = {k: v for k, v in request["headers"].items() if k in ("User-Agent", "Content-Type")}
    if "Authorization" in request["headers"]:
        headers["Authorization"] = basic
    body = with_features(request["body"]) if request["body_kind"] == "json" else None
    response = api.client.request(request["method"], project.path + path, headers=headers, json=body)
    where = f"seq {request['seq']} {request['method']} {request['path']}"
    assert response.status_code == 200, f"{where}: {response.status_code} {response.text}"
    got = response.json()
    recorded = request["response_body"]
    if path == "/health":
        assert got["status"] == "UP" and set(recorded) <= set(got), where
    elif path == "/setup":
        assert got == {"model_version": version}, where
    elif path == "/versions":
        assert got == {"versions": [version]}, where
    elif path == "/predict":
        assert body is not None, where  # a prediction request carries its tasks
        results = got["results"]
        assert len(results) == len(body["tasks"]), where  # one per task, in order
        for result in results:
            # tbal marks each result item (``tbal``: auto-label or model); Label Studio stores items as is
            marker = result["result"][0].pop("tbal")
            assert marker in ("auto-label", "model"), where
            assert shape(result) == shape(recorded["results"][0]), where
            assert result["model_version"] == version
            choice = result["result"][0]
            assert (choice["from_name"], choice["to_name"], choice["type"]) == ("label", "text", "choices")
            assert choice["value"]["choices"][0] in CLASSES
            assert 0.0 <= result["score"] <= 1.0 and choice["score"] == result["score"]
    elif path == "/webhook":
        assert body is not None, where  # a webhook carries its action
        assert got["action"] == body["action"], where
        expected = {"START_TRAINING": "queued", "PROJECT_UPDATED": "ignored"}.get(body["action"], "ok")
        assert got["status"] == expected, where
        assert got["skipped_tasks"] == [], where
    else:
        raise AssertionError(f"{where}: unexpected path in the recording")
