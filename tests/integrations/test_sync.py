"""Two-way sync against an in-memory Label Studio (``fake_label_studio``: the REST calls tbal makes,
answered as Label Studio 1.23.2 does): the token stored encrypted and never shown, the queue pushed once
however often it syncs (with its purpose), annotations made while tbal was away pulled, auto-labels
written back marked, the Train button after a crashed round, an export of a synced project imported into
a fresh project (its first round runs), failures in the connection's status, and raw ``$text`` /
``$image`` tasks."""

from __future__ import annotations

import io
import threading
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db.base import utcnow
from app.db.models import Item, LabelStudioConnection, Round
from app.integrations.label_studio import credentials
from tests.app.conftest import Api, blobs
from tests.integrations.conftest import CLASSES, D, LSProject, upload
from tests.integrations.fake_label_studio import TOKEN, URL, FakeLabelStudio

CONFIG = (
    '<View><Text name="text" value="$text"/><Choices name="label" toName="text" choice="single">'
    '<Choice value="Positive"/><Choice value="Negative"/></Choices></View>'
)
IMAGE_CONFIG = CONFIG.replace('<Text name="text" value="$text"/>', '<Image name="text" value="$image"/>')


def _link(api: Api, project: LSProject, fake: FakeLabelStudio, token: str = TOKEN) -> None:
    api.client.app.state.label_studio_transport = fake.transport()  # type: ignore[attr-defined]
    body = {"ls_url": URL, "ls_project": fake.project, "ls_token": token}
    response = api.patch(f"/api/v1/projects/{project.id}/label-studio/connection", json=body)
    assert response.status_code == 200, response.text
    setup = api.client.post(f"{project.path}/setup", json={"schema": CONFIG, "project": f"{fake.project}.1"})
    assert setup.status_code == 200, setup.text


def _sync(api: Api, project: LSProject, expect: int = 200) -> dict[str, Any]:
    response = api.post(f"/api/v1/projects/{project.id}/label-studio/sync")
    assert response.status_code == expect, response.text
    return dict(response.json())


def _status(api: Api, project: LSProject) -> dict[str, Any]:
    return dict(api.get(f"/api/v1/projects/{project.id}/label-studio/status").json())


def _with_truth(api: Api, project: LSProject, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    X, y = blobs(n, d=D, k=2, seed=5, spread=2.0)
    upload(api, project.id, X, y, ids=[f"item-{i}" for i in range(n)])
    return X, y


def test_token_is_stored_encrypted_never_shown_and_learned_at_setup(
    api: Api, connected: Any, session_factory: sessionmaker[Session]
) -> None:
    project: LSProject = connected()
    fake = FakeLabelStudio()
    _link(api, project, fake)
    read = api.get(f"/api/v1/projects/{project.id}/label-studio/connection")
    assert read.json()["has_token"] is True and read.json()["ls_project"] == fake.project
    assert TOKEN not in read.text and TOKEN not in _status(api, project).__repr__()
    with session_factory() as session:
        row = session.get(LabelStudioConnection, project.id)
        assert row is not None and row.ls_token is not None and TOKEN not in row.ls_token
        assert credentials.decrypt(api.settings, row.ls_token) == TOKEN

    # a connection without URL and token learns them (and the project) from Label Studio's /setup
    other: LSProject = connected()
    body = {"schema": CONFIG, "project": "12.1795325957", "hostname": URL, "access_token": TOKEN}
    assert api.client.post(f"{other.path}/setup", json=body).status_code == 200
    learned = api.get(f"/api/v1/projects/{other.id}/label-studio/connection").json()
    assert (learned["ls_url"], learned["ls_project"], learned["has_token"]) == (URL, 12, True)
    assert learned["data_key"] == "text"

    # credentials belong in the token, never in the URL (it is shown and logged)
    leaky = api.patch(
        f"/api/v1/projects/{project.id}/label-studio/connection", json={"ls_url": "http://admin:pw@ls.test"}
    )
    assert leaky.status_code == 422 and "without user:password" in leaky.text

    # one sync of a project at a time (two at once could both create a new query's task)
    from app.integrations.label_studio import sync

    held = sync._running.setdefault(project.id, threading.Lock())
    with held:
        busy = _sync(api, project, expect=409)
    assert "is running" in busy["detail"]["reason"]
    assert _sync(api, project)["tasks_linked"] == 0


def test_queue_pushed_once_annotations_pulled_after_an_outage(
    api: Api, connected: Any, session_factory: sessionmaker[Session]
) -> None:
    project: LSProject = connected(validation_size=20, seed_size=6)
    _X, y = _with_truth(api, project, 60)
    fake = FakeLabelStudio()
    queue = api.get(f"/api/v1/projects/{project.id}/queue", params={"limit": 100}).json()["items"]
    team_task = fake.add_task({"external_id": queue[0]["external_id"], "text": "imported by the team"})
    _link(api, project, fake)

    first = _sync(api, project)
    assert first["tasks_created"] == len(queue) - 1 and first["tasks_linked"] == len(queue)
    assert first["tasks_marked"] == 1  # the team's own task of a queued item got its purpose
    assert fake.tasks[team_task]["data"]["tbal_purpose"] == queue[0]["purpose"]
    for q in queue:
        [task] = fake.by_external(q["external_id"])  # exactly one task per queued item
        assert task["data"]["tbal_purpose"] == q["purpose"]
        assert task["id"] == team_task or len(task["data"]["features"]) == D
    second = _sync(api, project)
    assert second["tasks_created"] == 0 and second["tasks_marked"] == 0 and len(fake.tasks) == len(queue)

    # a task whose external id the team edits to another item: linked to that item now, and the item it
    # stood for (still asked for) gets a new task
    other = next(f"item-{i}" for i in range(60) if f"item-{i}" not in {q["external_id"] for q in queue})
    [moved] = fake.by_external(queue[1]["external_id"])
    moved["data"] = {**moved["data"], "external_id": other}
    relinked = _sync(api, project)
    assert relinked["tasks_created"] == 1 and len(fake.by_external(queue[1]["external_id"])) == 1

    # tbal is away while two annotators label 5 tasks (Label Studio never retries a webhook)
    truth = {f"item-{i}": CLASSES[int(c)] for i, c in enumerate(y)}
    annotated = queue[:5]
    ids = []
    for q in annotated:
        [task] = fake.by_external(q["external_id"])
        ids.append(fake.annotate(task["id"], truth[q["external_id"]], user=1))
        fake.annotate(task["id"], truth[q["external_id"]], user=2)
    pulled = _sync(api, project)
    assert pulled["labels_written"] == 5 and pulled["annotations"] == 10
    open_after = api.get(f"/api/v1/projects/{project.id}/queue").json()
    assert open_after["open_validation"] + open_after["open_training"] == len(queue) - 5
    assert _sync(api, project)["labels_written"] == 5  # idempotent: the same labels again, nothing new

    # an annotation deleted in Label Studio while tbal was away: the label follows
    [task] = fake.by_external(annotated[0]["external_id"])
    for annotation in list(task["annotations"]):
        fake.delete_annotation(annotation["id"])
    assert _sync(api, project)["labels_removed"] == 1

    # failures are not silent: Label Studio down, a wrong token
    fake.down = True
    down = _sync(api, project, expect=424)
    assert "did not answer" in down["detail"]["reason"]
    fake.down = False
    api.patch(f"/api/v1/projects/{project.id}/label-studio/connection", json={"ls_token": "wrong"})
    refused = _sync(api, project, expect=424)
    assert "401" in refused["detail"]["reason"] and "access token" in refused["detail"]["reason"]
    errors = _status(api, project)["last_errors"]
    assert [e["source"] for e in errors[:2]] == ["sync", "sync"] and "401" in errors[0]["reason"]
    assert "wrong" not in str(errors) and TOKEN not in str(errors)


def test_train_after_a_crashed_round_and_auto_labels_written_back(
    api: Api, connected: Any, session_factory: sessionmaker[Session]
) -> None:
    project: LSProject = connected(epsilon=0.2, delta=0.2)  # a first round that surely auto-labels
    _with_truth(api, project, 400)
    assert api.post(f"/api/v1/projects/{project.id}/simulate").status_code == 200
    with session_factory() as session:  # a round whose worker died long ago
        old = utcnow() - timedelta(hours=3)
        dead = Round(project_id=project.id, index=0, status="running", started_at=old, heartbeat_at=old)
        session.add(dead)
        session.commit()
        dead_id = dead.id
    fake = FakeLabelStudio()
    _link(api, project, fake)
    train = api.client.post(
        f"{project.path}/webhook", json={"action": "START_TRAINING", "project": {"id": 7}}
    )
    assert train.status_code == 200, train.text
    assert train.json()["reaped_rounds"] == [dead_id]
    done = api.wait_round(train.json()["round_id"])
    assert done["status"] == "succeeded", done
    assert api.get(f"/api/v1/rounds/{dead_id}").json()["status"] == "failed"

    auto = api.get(f"/api/v1/projects/{project.id}/auto-labels", params={"limit": 20}).json()["items"]
    assert auto  # FAST pins delta_schedule uniform: the round certifies
    for a in auto:
        fake.add_task({"external_id": a["external_id"], "text": "in Label Studio already"})
    synced = _sync(api, project)
    assert synced["auto_labels_written"] == len(auto)
    for a in auto:
        [task] = fake.by_external(a["external_id"])
        [prediction] = task["predictions"]
        assert prediction["model_version"] == f"tbal-auto-label:{done['model_version']}"
        assert prediction["result"][0]["tbal"] == "auto-label"
        assert prediction["result"][0]["value"]["choices"] == [a["class_name"]]
        assert prediction["score"] == pytest.approx(a["confidence"])
        assert "tbal_purpose" not in task["data"]  # not asked for: left as the team made it
    assert _sync(api, project)["auto_labels_written"] == 0  # once per round

    # an auto-label written back as an annotation is never taken for a human vote
    [task] = fake.by_external(auto[0]["external_id"])
    hook = {
        "action": "ANNOTATION_CREATED",
        "task": {"id": task["id"], "data": task["data"]},
        "annotation": {
            "id": 5000,
            "task": task["id"],
            "completed_by": 1,
            "result": task["predictions"][0]["result"],
        },
    }
    assert api.client.post(f"{project.path}/webhook", json=hook).json()["labels_written"] == 0


def test_export_of_a_synced_project_runs_a_first_round_in_a_fresh_project(
    api: Api, connected: Any, session_factory: sessionmaker[Session]
) -> None:
    project: LSProject = connected(validation_size=60, seed_size=20, targeted_validation=0)
    _X, y = _with_truth(api, project, 300)
    fake = FakeLabelStudio()
    _link(api, project, fake)
    _sync(api, project)
    truth = {f"item-{i}": CLASSES[int(c)] for i, c in enumerate(y)}
    for task in list(fake.tasks.values()):
        fake.annotate(task["id"], truth[task["data"]["external_id"]], user=1)
    tasks = list(fake.tasks.values())  # the export as Label Studio writes it (annotations included)
    purposes = {t["data"]["tbal_purpose"] for t in tasks}
    assert purposes == {"validation", "training"}

    fresh: LSProject = connected(validation_size=60, seed_size=20, targeted_validation=0)
    imported = api.post(f"/api/v1/projects/{fresh.id}/label-studio/import", json=tasks)
    assert imported.status_code == 200, imported.text
    n_val = sum(1 for t in tasks if t["data"]["tbal_purpose"] == "validation")
    assert imported.json()["joined_validation"] == n_val == 60
    with session_factory() as session:
        roles = dict(
            session.execute(select(Item.external_id, Item.role).where(Item.project_id == fresh.id)).all()
        )
    assert all(
        roles[t["data"]["external_id"]]
        == ("validation" if t["data"]["tbal_purpose"] == "validation" else "train")
        for t in tasks
    )
    upload(api, fresh.id, *blobs(200, d=D, k=2, seed=9, spread=2.0))  # an unlabeled pool to label
    api.run_round(fresh.id)


def _choice_result(choice: str) -> dict[str, Any]:
    return {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [choice]}}


def _png(rgb: tuple[int, int, int], size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def test_raw_image_tasks_fetched_from_label_studio_with_the_token(
    api: Api, connected: Any, make_project: Any, session_factory: sessionmaker[Session]
) -> None:
    fake = FakeLabelStudio()
    fake.files["/data/upload/7/red.png"] = _png((255, 0, 0))
    project = make_project(classes=CLASSES, data_kind="image", input_shape=[8, 8, 3])
    made = api.post(f"/api/v1/projects/{project['id']}/label-studio/connection").json()
    ls = LSProject(
        project["id"],
        project["name"],
        made["url"].removeprefix(str(api.client.base_url)),
        made["secret"],
        made["url"],
    )
    api.client.app.state.label_studio_transport = fake.transport()  # type: ignore[attr-defined]
    body = {"ls_url": URL, "ls_project": fake.project, "ls_token": TOKEN}
    api.patch(f"/api/v1/projects/{ls.id}/label-studio/connection", json=body)
    assert api.client.post(f"{ls.path}/setup", json={"schema": IMAGE_CONFIG}).status_code == 200
    tasks = [
        {"id": 1, "data": {"image": "/data/upload/7/red.png"}},
        {"id": 2, "data": {"image": "/data/upload/7/missing.png"}},
        {"id": 3, "data": {"image": "http://127.0.0.1:9/private.png"}},
    ]
    response = api.client.post(f"{ls.path}/predict", json={"tasks": tasks, "label_config": IMAGE_CONFIG})
    assert response.status_code == 200 and len(response.json()["results"]) == 3
    with session_factory() as session:
        item = session.scalars(select(Item).where(Item.project_id == ls.id, Item.external_id == "ls-1")).one()
        pixels = np.frombuffer(item.data, dtype=np.uint8).reshape(8, 8, 3)
    assert (pixels == np.array([255, 0, 0], dtype=np.uint8)).all()
    assert "GET /data/upload/7/red.png" in fake.calls
    reason = next(e["reason"] for e in _status(api, ls)["last_errors"] if "have no item" in e["reason"])
    assert "task 2: image: Label Studio answered GET /data/upload/7/missing.png with 404" in reason
    assert "task 3: image: http://127.0.0.1:9/private.png resolves to a non-public address" in reason


def test_raw_text_tasks_become_items_in_the_background_past_the_budget(
    api: Api, make_project: Any, session_factory: sessionmaker[Session]
) -> None:
    project = make_project(
        classes=CLASSES, data_kind="text", input_shape=[], settings={"encoder": "hashing:64"}
    )
    made = api.post(f"/api/v1/projects/{project['id']}/label-studio/connection").json()
    path = made["url"].removeprefix(str(api.client.base_url))
    assert api.client.post(f"{path}/setup", json={"schema": CONFIG}).status_code == 200
    tasks = [{"id": i, "data": {"text": f"sentence number {i} is fine"}} for i in range(1, 6)]
    tasks.append({"id": 6, "data": {"text": ""}})
    now = api.client.post(f"{path}/predict", json={"tasks": tasks[:2], "label_config": CONFIG})
    assert now.json() == {"results": [[], []]}  # items made, no model yet
    api.settings.label_studio_predict_budget_s = 1e-9  # nothing fits: the rest is made after the answer
    later = api.client.post(f"{path}/predict", json={"tasks": tasks[2:], "label_config": CONFIG})
    assert later.status_code == 200 and len(later.json()["results"]) == 4
    with session_factory() as session:
        ids = set(session.scalars(select(Item.external_id).where(Item.project_id == project["id"])))
    assert ids == {f"ls-{i}" for i in range(1, 6)}  # the empty text is refused, and said so
    # new tasks (TASKS_CREATED, 1 s limit): always made in the background
    created = api.client.post(
        f"{path}/webhook",
        json={"action": "TASKS_CREATED", "tasks": [{"id": 7, "data": {"text": "one more"}}]},
    )
    assert created.status_code == 200 and created.json()["pending"] == [7]
    with session_factory() as session:
        assert session.scalar(
            select(Item.id).where(Item.project_id == project["id"], Item.external_id == "ls-7")
        )
    # an annotation of a raw task tbal has no item for yet: the item is made and the vote recorded
    annotation = {"id": 80, "task": 8, "completed_by": 1, "result": [_choice_result("Negative")]}
    hook = {
        "action": "ANNOTATION_CREATED",
        "task": {"id": 8, "data": {"text": "not seen before"}},
        "annotation": annotation,
    }
    recorded = api.client.post(f"{path}/webhook", json=hook).json()
    assert recorded["items_created"] == 1 and recorded["labels_written"] == 1, recorded
    errors = api.get(f"/api/v1/projects/{project['id']}/label-studio/status").json()["last_errors"]
    assert any("task 6: the text: empty text" in e["reason"] for e in errors)


def test_the_token_key_passphrase_or_key_file(tmp_path: Any) -> None:
    from app.errors import Invalid
    from app.settings import Settings

    on_file = Settings(artifacts_dir=tmp_path / "a")
    stored = credentials.encrypt(on_file, TOKEN)
    assert TOKEN not in stored and credentials.decrypt(on_file, stored) == TOKEN
    key_file = tmp_path / "a" / credentials.KEY_FILE
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert credentials.decrypt(Settings(artifacts_dir=tmp_path / "a"), stored) == TOKEN  # same file, same key
    passphrase = Settings(artifacts_dir=tmp_path / "b", secret_key=SecretStr("correct horse battery staple"))
    assert credentials.decrypt(passphrase, credentials.encrypt(passphrase, TOKEN)) == TOKEN
    with pytest.raises(Invalid, match="set the token again"):
        credentials.decrypt(passphrase, stored)  # encrypted under the key file's key


def test_the_sync_command_says_what_failed(
    api: Api, connected: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``tbal label-studio-sync``: one JSON line per synced project; a project that cannot sync is named
    on stderr, recorded in its status, and the exit code is 1."""
    import argparse

    from app.integrations.label_studio import cli

    project: LSProject = connected()
    _link(api, project, FakeLabelStudio())  # the command reaches the network: nothing answers there
    monkeypatch.setenv("TBAL_DATABASE_URL", api.settings.database_url)
    monkeypatch.setenv("TBAL_ARTIFACTS_DIR", str(api.settings.artifacts_dir))
    monkeypatch.setenv("TBAL_LABEL_STUDIO_TIMEOUT_S", "2")
    assert cli._sync(argparse.Namespace(projects=[project.id])) == 1
    assert f"project {project.id}: ls_url: Label Studio at {URL}/ did not answer" in capsys.readouterr().err
    assert _status(api, project)["last_errors"][0]["source"] == "sync"
    assert cli._sync(argparse.Namespace(projects=[999_999])) == 1


def test_the_periodic_sync_task(api: Api, connected: Any) -> None:
    """The Celery beat entry and ``tbal.label_studio_sync`` run as a worker runs it (its app's settings
    and database): a project that cannot sync is recorded, the others go on."""
    import worker.label_studio  # noqa: F401 (registers the task)
    from worker.celery_app import LABEL_STUDIO_SYNC_TASK, make_celery

    app = make_celery(api.settings)
    entry = app.conf.beat_schedule["label-studio-sync"]
    assert (
        entry["task"] == LABEL_STUDIO_SYNC_TASK
        and entry["schedule"] == api.settings.label_studio_sync_interval_s
    )
    project: LSProject = connected()
    _link(api, project, FakeLabelStudio())  # reached over the network by the task: nothing answers
    api.settings.label_studio_timeout_s = 2.0
    assert app.tasks[LABEL_STUDIO_SYNC_TASK].apply().get() == 0
    assert _status(api, project)["last_errors"][0]["source"] == "sync"
    quiet = make_celery(api.settings.model_copy(update={"label_studio_sync_interval_s": 0}))
    assert quiet.conf.beat_schedule == {}


def test_an_export_without_purposes_leaves_the_stratum_its_validation_points(
    api: Api, connected: Any
) -> None:
    """A fresh project with a stratum (tbal.plan): an import's unnamed labeled tasks fill the initial
    validation set of validation_size − targeted_validation only; a later round draws the rest."""
    project: LSProject = connected(validation_size=60, seed_size=20, targeted_validation=0)
    _X, y = _with_truth(api, project, 300)
    fake = FakeLabelStudio()
    _link(api, project, fake)
    _sync(api, project)
    truth = {f"item-{i}": CLASSES[int(c)] for i, c in enumerate(y)}
    for task in list(fake.tasks.values()):
        fake.annotate(task["id"], truth[task["data"]["external_id"]], user=1)
    tasks = [
        {**t, "data": {k: v for k, v in t["data"].items() if k != "tbal_purpose"}}
        for t in fake.tasks.values()
    ]
    assert len(tasks) == 80

    fresh: LSProject = connected(validation_size=60, seed_size=20, targeted_validation=40)
    imported = api.post(f"/api/v1/projects/{fresh.id}/label-studio/import", json=tasks)
    assert imported.status_code == 200, imported.text
    # 80 unnamed labels split 20 : 20 (n_v = 60 − 40), at most the 20 the initial set lacks
    assert imported.json()["joined_validation"] == 20
