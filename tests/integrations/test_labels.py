"""Annotations -> human labels: webhooks from several annotators (a soft label), updates, cancelled and
deleted annotations; importing a Label Studio JSON export; the queue as a Label Studio import file."""

from __future__ import annotations

import base64
import copy
import json
import struct
import zlib
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import HumanLabel, Item, LabelQuery, LabelStudioAnnotation
from tests.app.conftest import Api
from tests.integrations.conftest import (
    CLASSES,
    LSProject,
    features_of,
    fixture_path,
    train_first_model,
    upload,
)

POSITIVE, NEGATIVE = CLASSES.index("Positive"), CLASSES.index("Negative")


def _task(task_id: int, **data: Any) -> dict[str, Any]:
    return {"id": task_id, "data": {"text": f"t{task_id}", "features": features_of(task_id), **data}}


def _annotation(
    annotation_id: int, task_id: int, user: int, *choices: str, cancelled: bool = False
) -> dict[str, Any]:
    result = [
        {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": list(choices)}}
    ]
    return {
        "id": annotation_id,
        "result": result if choices else [],
        "was_cancelled": cancelled,
        "completed_by": user,
        "task": task_id,
    }


def _hook(api: Api, project: LSProject, action: str, **payload: Any) -> dict[str, Any]:
    response = api.client.post(
        f"{project.path}/webhook", json={"action": action, "project": {"id": 1}, **payload}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def _label(factory: sessionmaker[Session], external_id: str) -> HumanLabel | None:
    with factory() as session:
        return session.scalars(
            select(HumanLabel)
            .join(Item, Item.id == HumanLabel.item_id)
            .where(Item.external_id == external_id)
        ).one_or_none()


def _role(factory: sessionmaker[Session], external_id: str) -> str:
    with factory() as session:
        return str(session.scalars(select(Item.role).where(Item.external_id == external_id)).one())


def test_annotators_votes_updates_cancels_and_deletes(
    api: Api, connected: Any, session_factory: sessionmaker[Session]
) -> None:
    project: LSProject = connected()
    # the sets are fixed first (one item drawn and answered), so the tasks' items stay in the pool:
    # their labels are labels nobody asked for
    upload(api, project.id, np.asarray([features_of(99)], dtype=np.float32), ids=["seed-item"])
    api.post(
        f"/api/v1/projects/{project.id}/labels", json={"labels": [{"external_id": "seed-item", "label": 0}]}
    )
    created = _hook(
        api, project, "TASKS_CREATED", tasks=[_task(1), _task(2), {"id": 3, "data": {"text": "no"}}]
    )
    assert created["items_created"] == 2
    assert [p["task_id"] for p in created["skipped_tasks"]] == [3]
    assert "no data.features to create it from (4 numbers)" in created["skipped_tasks"][0]["reason"]

    def annotate(action: str, annotation: dict[str, Any]) -> dict[str, Any]:
        return _hook(api, project, action, annotation=annotation, task=_task(annotation["task"]))

    annotate("ANNOTATION_CREATED", _annotation(10, 1, 1, "Positive"))
    one = _label(session_factory, "ls-1")
    assert one is not None and one.label == POSITIVE and one.distribution == [1.0, 0.0]
    assert one.source == "label-studio" and _role(session_factory, "ls-1") == "train"  # labeled unasked

    # a 1-1 tie is no label: the item waits for one more annotator (the documented tie rule)
    tie = annotate("ANNOTATION_CREATED", _annotation(11, 1, 2, "Negative"))
    assert tie["ties"] == 1 and tie["labels_removed"] == 1 and _label(session_factory, "ls-1") is None
    third = annotate("ANNOTATION_CREATED", _annotation(15, 1, 5, "Negative"))
    two = _label(session_factory, "ls-1")
    assert third["ties"] == 0 and two is not None and two.label == NEGATIVE
    assert two.distribution == [1 / 3, 2 / 3]
    assert two.votes == {"ls-user-1": POSITIVE, "ls-user-2": NEGATIVE, "ls-user-5": NEGATIVE}
    _hook(api, project, "ANNOTATIONS_DELETED", annotations=[{"id": 15}])

    annotate("ANNOTATION_CREATED", _annotation(12, 1, 3, cancelled=True))  # skipped: no vote
    annotate("ANNOTATION_CREATED", _annotation(13, 1, 4, "Positive", "Negative"))  # two choices: no vote
    assert _label(session_factory, "ls-1") is None  # still a tie

    annotate("ANNOTATION_UPDATED", _annotation(11, 1, 2, "Positive"))
    assert _label(session_factory, "ls-1").votes == {"ls-user-1": POSITIVE, "ls-user-2": POSITIVE}  # type: ignore[union-attr]
    annotate("ANNOTATION_CREATED", _annotation(14, 1, 2, "Negative"))  # an annotator's later annotation wins
    assert _label(session_factory, "ls-1") is None  # a tie again

    deleted = _hook(api, project, "ANNOTATIONS_DELETED", annotations=[{"id": 10}, {"id": 14}])
    assert deleted["labels_written"] == 1 and _label(session_factory, "ls-1").votes == {"ls-user-2": POSITIVE}  # type: ignore[union-attr]
    gone = _hook(api, project, "ANNOTATIONS_DELETED", annotations=[{"id": 11}, {"id": 999}])
    assert gone["labels_removed"] == 1 and _label(session_factory, "ls-1") is None
    assert _role(session_factory, "ls-1") == "pool"  # an unasked item goes back to the pool
    with session_factory() as session:
        kept = session.scalars(select(LabelStudioAnnotation.annotation_id).order_by(LabelStudioAnnotation.id))
        assert list(kept) == [12, 13]  # the unusable ones are remembered, without a class

    # bulk annotations (Label Studio's "predictions to annotations"), then the task deleted
    bulk = [_annotation(30, 2, 1, "Negative"), _annotation(31, 2, 2, "Negative")]
    _hook(api, project, "ANNOTATIONS_CREATED", annotation=bulk, task=[_task(2), _task(2)])
    assert _label(session_factory, "ls-2").votes == {"ls-user-1": NEGATIVE, "ls-user-2": NEGATIVE}  # type: ignore[union-attr]
    assert _hook(api, project, "TASKS_DELETED", tasks=[{"id": 2}])["labels_removed"] == 1
    assert _label(session_factory, "ls-2") is None and _role(session_factory, "ls-2") == "pool"
    broken = api.client.post(
        f"{project.path}/webhook", json={"action": "ANNOTATION_CREATED", "task": _task(2)}
    )
    assert broken.status_code == 422 and "needs 'annotation' and 'task'" in broken.json()["detail"]["reason"]

    # an item annotated by task data that names no item is reported, not guessed
    missing = _hook(
        api,
        project,
        "ANNOTATION_CREATED",
        annotation=_annotation(20, 5, 1, "Positive"),
        task={"id": 5, "data": {}},
    )
    assert [p["task_id"] for p in missing["skipped_tasks"]] == [5] and missing["labels_written"] == 0

    # other actions are acknowledged and ignored
    assert _hook(api, project, "PROJECT_UPDATED")["status"] == "ignored"
    train = api.client.post(
        f"{project.path}/webhook", json={"action": "START_TRAINING", "project": {"id": 1}}
    )
    assert train.status_code == 409 and train.json()["detail"]["field"] == "validation_labels"


def test_annotating_the_queue_answers_it_and_deleting_reopens_it(
    api: Api, connected: Any, session_factory: sessionmaker[Session]
) -> None:
    project: LSProject = connected(validation_size=5, seed_size=2, label_budget=10, batch_size=2)
    X = np.asarray([features_of(t) for t in range(20)], dtype=np.float32)
    upload(api, project.id, X, ids=[f"item-{t}" for t in range(20)])
    queue = api.get(f"/api/v1/projects/{project.id}/queue").json()
    asked = queue["items"][0]
    assert asked["purpose"] == "validation"
    task = {"id": 77, "data": {"external_id": asked["external_id"], "text": "x"}}  # names the item
    _hook(api, project, "ANNOTATION_CREATED", annotation=_annotation(1, 77, 1, "Negative"), task=task)
    after = api.get(f"/api/v1/projects/{project.id}/queue").json()
    assert after["open_validation"] == queue["open_validation"] - 1
    label = _label(session_factory, asked["external_id"])
    assert label is not None and label.label == NEGATIVE
    assert _role(session_factory, asked["external_id"]) == "validation"
    _hook(api, project, "ANNOTATIONS_DELETED", annotations=[{"id": 1}])
    with session_factory() as session:
        query = session.scalars(select(LabelQuery).where(LabelQuery.item_id == asked["item_id"])).one()
        assert query.answered is False
    assert _role(session_factory, asked["external_id"]) == "validation"

    # a label given through the API is not Label Studio's to remove
    api.post(
        f"/api/v1/projects/{project.id}/labels", json={"labels": [{"item_id": asked["item_id"], "label": 0}]}
    )
    with session_factory() as session:
        session.add(
            LabelStudioAnnotation(
                project_id=project.id,
                annotation_id=5,
                task_id=77,
                item_id=asked["item_id"],
                annotator="x",
                label=None,
            )
        )
        session.commit()
    _hook(api, project, "ANNOTATIONS_DELETED", annotations=[{"id": 5}])
    kept = _label(session_factory, asked["external_id"])
    assert kept is not None and kept.source == "api"


def _export_with_two_annotators() -> list[dict[str, Any]]:
    """The recorded JSON export (7 tasks, one annotation) with features, a second annotator disagreeing
    on task 2, a cancelled annotation on task 3 and a skipped-then-annotated task 4."""
    tasks = json.loads(fixture_path("export_JSON_all.json").read_text())
    for task in tasks:
        task["data"]["features"] = features_of(task["id"])
    by_id = {t["id"]: t for t in tasks}
    second = copy.deepcopy(by_id[2]["annotations"][0])
    second.update(id=50, completed_by=3)
    second["result"][0]["value"]["choices"] = ["Negative"]
    by_id[2]["annotations"].append(second)
    by_id[3]["annotations"].append(
        {**copy.deepcopy(second), "id": 51, "task": 3, "was_cancelled": True, "result": []}
    )
    by_id[4]["annotations"] += [
        {**copy.deepcopy(second), "id": 52, "task": 4, "was_cancelled": True, "result": []},
        {**copy.deepcopy(by_id[2]["annotations"][0]), "id": 53, "task": 4, "completed_by": 1},
    ]
    return tasks


def test_import_of_a_label_studio_export(
    api: Api, connected: Any, session_factory: sessionmaker[Session]
) -> None:
    project: LSProject = connected()
    url = f"/api/v1/projects/{project.id}/label-studio/import"
    export = _export_with_two_annotators()
    first = api.post(url, json=export)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "tasks": 7,
        "items_created": 7,
        "annotations": 5,
        "cancelled": 2,
        "unusable": 0,
        "labels_written": 1,
        "labels_removed": 0,
        "ties": 1,
        "joined_validation": 1,
        "skipped_tasks": [],
    }
    assert _label(session_factory, "ls-2") is None  # 1-1: waits for a third annotator
    assert _label(session_factory, "ls-3") is None  # only a cancelled annotation
    four = _label(session_factory, "ls-4")
    assert four is not None and four.votes == {"ls-user-1": POSITIVE}  # its cancelled one dropped
    # a fresh project: of the two labeled tasks, a uniform draw of one joined the validation set
    assert sorted([_role(session_factory, "ls-2"), _role(session_factory, "ls-4")]) == ["train", "validation"]

    again = api.post(url, json=export).json()  # idempotent
    assert again["items_created"] == 0 and again["labels_written"] == 1 and again["joined_validation"] == 0
    labels = api.get(f"/api/v1/projects/{project.id}/labels").json()["items"]
    assert len(labels) == 1 and {lab["source"] for lab in labels} == {"label-studio"}

    # the recorded export as it is (text only) cannot make items of a feature project: said per task
    plain = api.post(url, json=json.loads(fixture_path("export_JSON.json").read_text())).json()
    assert plain["items_created"] == 0 and plain["ties"] == 1  # task 2 exists as ls-2 now, still tied
    other: LSProject = connected()
    text_only = api.post(
        f"/api/v1/projects/{other.id}/label-studio/import",
        json=json.loads(fixture_path("export_JSON.json").read_text()),
    ).json()
    assert text_only["labels_written"] == 0 and [p["task_id"] for p in text_only["skipped_tasks"]] == [2]

    minimal = api.post(url, json=json.loads(fixture_path("export_JSON_MIN_all.json").read_text()))
    assert minimal.status_code == 422 and "export as JSON" in minimal.json()["detail"]["reason"]
    wrong_control = api.post(url, params={"from_name": "other"}, json=export).json()
    assert wrong_control["unusable"] == 3 and wrong_control["labels_removed"] == 1


def test_queue_as_a_label_studio_import_file(api: Api, connected: Any) -> None:
    project: LSProject = connected()
    url = f"/api/v1/projects/{project.id}/label-studio/tasks"
    X = np.asarray([features_of(t) for t in range(400)], dtype=np.float32)
    upload(api, project.id, X, ids=[f"item-{t}" for t in range(400)])
    before = api.get(url)
    assert before.status_code == 200 and "attachment" in before.headers["content-disposition"]
    tasks = before.json()
    queue = api.get(f"/api/v1/projects/{project.id}/queue", params={"limit": 1000}).json()
    assert len(tasks) == len(queue["items"]) == 95  # the seed and half of validation_size
    assert [t["data"]["external_id"] for t in tasks] == [q["external_id"] for q in queue["items"]]
    for task in tasks[:20]:
        row = int(task["data"]["external_id"].split("-")[1])
        assert task["data"]["features"] == X[row].tolist() and "predictions" not in task
    assert {t["data"]["tbal_purpose"] for t in tasks} == {"validation", "training"}


def test_queue_file_carries_predictions_once_a_model_exists(api: Api, connected: Any) -> None:
    project: LSProject = connected()
    round_ = train_first_model(api, project)
    url = f"/api/v1/projects/{project.id}/label-studio/tasks"
    assert api.get(url).status_code == 422  # no control names known yet
    config = fixture_path("label_config.xml").read_text()
    assert api.client.post(f"{project.path}/setup", json={"schema": config}).status_code == 200
    tasks = api.get(url).json()
    assert tasks and all(len(t["predictions"]) == 1 for t in tasks)
    reference = api.post(
        f"/api/v1/projects/{project.id}/predict",
        json={"items": [{"features": t["data"]["features"]} for t in tasks]},
    ).json()
    for task, expected in zip(tasks, reference["predictions"], strict=True):
        prediction = task["predictions"][0]
        assert prediction["model_version"] == round_["model_version"]
        assert prediction["result"][0]["value"]["choices"] == [expected["class_name"]]
        assert (prediction["result"][0]["from_name"], prediction["result"][0]["to_name"]) == ("label", "text")
    named = api.get(url, params={"from_name": "sentiment", "to_name": "review"}).json()
    assert named[0]["predictions"][0]["result"][0]["from_name"] == "sentiment"


def _decode_png(uri: str) -> np.ndarray:
    """Decode the PNGs tbal writes (8-bit, filter 0 rows), checking every chunk's CRC."""
    raw = base64.b64decode(uri.removeprefix("data:image/png;base64,"))
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(raw):
        (length,) = struct.unpack(">I", raw[pos : pos + 4])
        tag, body = raw[pos + 4 : pos + 8], raw[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", raw[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(tag + body) & 0xFFFFFFFF
        chunks[tag] = body
        pos += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    channels = {0: 1, 2: 3, 6: 4}[color]
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), dtype=np.uint8).reshape(
        height, 1 + width * channels
    )
    assert depth == 8 and (rows[:, 0] == 0).all()
    return (
        rows[:, 1:].reshape(height, width, channels).squeeze(-1)
        if channels == 1
        else rows[:, 1:].reshape(height, width, channels)
    )


def test_image_projects_export_a_viewable_image(api: Api, make_project: Any) -> None:
    project = make_project(
        classes=CLASSES,
        data_kind="image",
        input_shape=[8, 8],
        settings={"validation_size": 3, "seed_size": 1, "targeted_validation": 0},
    )
    # no connection: the default fields (external_id, pixels)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 17, size=(6, 8, 8)).astype(np.uint8)  # 4-bit digits: shown ×255/16
    upload(api, project["id"], images, ids=[f"img-{i}" for i in range(6)])
    tasks = api.get(f"/api/v1/projects/{project['id']}/label-studio/tasks").json()
    assert len(tasks) == 4
    for task in tasks:
        row = int(task["data"]["external_id"].split("-")[1])
        assert task["data"]["pixels"] == images[row].tolist()
        shown = _decode_png(task["data"]["image"])
        expected = np.clip(np.rint(images[row] * (255 / 16)), 0, 255).astype(np.uint8)
        assert shown.shape == (8, 8) and (shown == expected).all()
