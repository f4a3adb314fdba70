"""The service in production shape: PostgreSQL + Redis + a real Celery worker process (``tbal worker``)
+ the API (``create_app`` with a broker, through FastAPI's TestClient).

1. The whole flow on scikit-learn's digits: create a project, ingest, answer the queue from ground truth,
   run rounds until the label budget is spent, read every auto-label back. With the valid bound the true
   error of all auto-labels is at most ε (the bound holds with probability ≥ 1 − δ over the validation
   draw; the run is seeded, so this is one fixed draw, not a flaky test); no item is auto-labeled twice;
   no human-labeled item is auto-labeled.
2. The same round task delivered twice at once through the broker, and once more after it finished:
   one delivery runs the round, the others write nothing (same rows, same round, one attempt).
3. The pool process running a round is killed (SIGKILL): its message comes back at once, finds the round
   apparently alive, watches it, takes it over once the dead runner's heartbeat is stale and finishes it;
   nothing is written twice and no human label changes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import make_engine, make_session_factory
from app.main import create_app
from app.projects.keys_service import create_key
from app.settings import Settings
from examples.demo import API, drive_project, evaluate, fetch_all, load_digits_data, wait_round
from tests.e2e.conftest import (
    DIGITS_SETTINGS,
    EPSILON,
    digits_project_ready,
    start_worker,
    stop_worker,
    worker_env,
)
from tests.in_process import as_httpx_client
from worker.celery_app import GPU_QUEUE, RUN_ROUND_TASK, TBALCelery, make_celery

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

STALE_AFTER_S = 5
REAP_AFTER_S = 120


@dataclass
class Stack:
    settings: Settings
    client: httpx.Client  # the TestClient over the app (see as_httpx_client)
    celery: TBALCelery
    factory: sessionmaker[Session]
    worker: subprocess.Popen[bytes]
    worker_log: Path

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.worker_log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def stack(postgres_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("e2e")
    settings = Settings(
        database_url=postgres_url,
        broker_url=redis_url,
        artifacts_dir=tmp / "artifacts",
        upload_dir=tmp / "uploads",
        progress_interval_s=0.1,
        train_device="cpu",
        torch_threads=1,
        db_pool_size=4,
        # A round whose heartbeat is 5 s old may be taken over (production: 600 s), so that deliveries
        # that find a round running elsewhere look again after seconds, not minutes.
        round_stale_after_s=STALE_AFTER_S,
        # A round without a heartbeat is marked failed only after REAP_AFTER_S (default 3 x 5 s). The
        # killed-process test needs the redelivered message to take its round over first: that message
        # looks again 10 s after it found the round running, and on a loaded machine the last heartbeat
        # before the kill can be seconds old, so 15 s let the reaper win (CI, load from other jobs).
        # Reaping itself is tested in tests/worker/test_stale_rounds.py.
        round_reap_after_s=REAP_AFTER_S,
    )
    env = worker_env(settings)
    celery = make_celery(settings)
    log_path = tmp / "worker.log"
    worker = start_worker(env, log_path, celery)
    engine = make_engine(settings)
    factory = make_session_factory(engine)
    _key, secret = create_key(factory, "e2e")
    try:
        with TestClient(create_app(settings)) as client:
            client.headers["Authorization"] = f"Bearer {secret}"
            yield Stack(settings, as_httpx_client(client), celery, factory, worker, log_path)
    finally:
        stop_worker(worker)
        celery.close()
        engine.dispose()


def test_health_reports_the_celery_dispatcher(stack: Stack) -> None:
    body = stack.client.get("/health").json()
    assert body == {"status": "ok", "database": "ok", "broker": "ok", "dispatcher": "celery"}


def test_digits_to_the_end_with_a_real_worker(stack: Stack) -> None:
    started = time.perf_counter()
    data = load_digits_data()
    try:
        result = drive_project(
            stack.client, data, DIGITS_SETTINGS, name="digits-e2e", seed=0, round_timeout_s=300, log=print
        )
    except Exception as exc:
        raise AssertionError(f"{exc}\nworker log:\n{stack.log_tail()}") from exc
    rounds, ev = result.rounds, result.evaluation
    elapsed = time.perf_counter() - started
    print(f"\ndigits on PostgreSQL + Redis + Celery: {len(rounds)} rounds in {elapsed:.1f} s")

    # Every round ran in the worker process to the end: the budget is spent or the pool is empty.
    assert len(rounds) >= 2 and all(r["status"] == "succeeded" for r in rounds)
    assert all(r["attempts"] == 1 and r["model_version"] == f"digits-e2e-r{r['index']}" for r in rounds)
    counts = stack.client.get(f"{API}/projects/{result.project['id']}").json()["counts"]
    assert counts["pool"] == 0 or counts["budget_used"] == counts["label_budget"] == 300, counts
    assert counts["auto_labels"] == ev.n_auto and counts["human_labels"] == ev.n_human
    last_version = rounds[-1]["model_version"]
    assert (Path(stack.settings.artifacts_dir) / str(result.project["id"]) / f"{last_version}.pt").is_file()

    # The guarantee, measured against the ground truth the service never trained on.
    assert ev.n_auto > 0, "nothing was auto-labeled: the test would check nothing"
    assert ev.true_error <= EPSILON, f"true error {ev.true_error:.4f} > ε = {EPSILON}"
    assert ev.duplicate_auto == 0
    assert ev.auto_on_human == 0
    # the validation set + the training labels; fewer than 500 validation labels where the stratum held
    # fewer pool points than the validation points asked inside it (an earlier round auto-labeled them)
    validation_bought = ev.n_human - counts["budget_used"]
    assert 250 <= validation_bought <= 500, validation_bought  # the uniform half is bought at the start

    # The service's own bookkeeping agrees with the client's count.
    last = rounds[-1]["metrics"]
    assert last["auto_labeled_total"] == ev.n_auto
    assert last["true_error"]["total_wrong"] == ev.n_wrong
    assert sum(r["metrics"]["auto_labeled"] for r in rounds) == ev.n_auto
    # The worker's round also wrote its reports: the model on the validation set, the labels to review.
    evaluation = stack.client.get(f"{API}/rounds/{rounds[-1]['id']}/evaluation").json()
    assert evaluation["n"] == last["validation_labels"] and evaluation["accuracy"] > 0.8, evaluation
    review = stack.client.get(f"{API}/projects/{result.project['id']}/label-review").json()
    assert review["round_id"] == rounds[-1]["id"] and review["training_labels"] == last["training_labels"]
    assert len(review["items"]) == review["stored"] >= 1, review
    with stack.factory() as session:
        pid = result.project["id"]
        rows, items = session.execute(
            text("SELECT count(*), count(DISTINCT item_id) FROM auto_labels WHERE project_id = :p"),
            {"p": pid},
        ).one()
        both = session.execute(
            text(
                "SELECT count(*) FROM auto_labels a JOIN human_labels h ON h.item_id = a.item_id "
                "WHERE a.project_id = :p"
            ),
            {"p": pid},
        ).scalar_one()
    assert rows == items == ev.n_auto and both == 0


def _broker_idle(stack: Stack, timeout_s: float = 120.0) -> None:
    """Wait until no round message is queued or delivered-but-unacknowledged (acks come after the work)."""
    import redis

    client = redis.Redis.from_url(str(stack.settings.broker_url))
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            queued = sum(int(client.llen(q)) for q in ("default", GPU_QUEUE))
            if queued == 0 and int(client.hlen("unacked")) == 0:
                return
            time.sleep(0.2)
    finally:
        client.close()
    raise AssertionError(f"round messages still pending after {timeout_s} s:\n{stack.log_tail()}")


def _snapshot(stack: Stack, pid: int, rid: int) -> dict[str, Any]:
    with stack.factory() as session:
        counts = {
            t: session.execute(
                text(f"SELECT count(*) FROM {t} WHERE project_id = :p"), {"p": pid}
            ).scalar_one()
            for t in ("auto_labels", "human_labels", "queries", "rounds")
        }
    return {
        "round": stack.client.get(f"{API}/rounds/{rid}").json(),
        "auto_labels": fetch_all(stack.client, f"{API}/projects/{pid}/auto-labels"),
        "queue": fetch_all(stack.client, f"{API}/projects/{pid}/queue"),
        "counts": counts,
    }


def _deliveries_overlapped(log: str, rid: int) -> bool:
    """Whether the worker log shows the second delivery of round ``rid`` starting before the first ended."""
    import re

    events: list[tuple[str, str]] = []
    for line in log.splitlines():
        if m := re.search(rf"round {rid}: delivery (\S+)", line):
            events.append(("start", m.group(1)))
        elif (m := re.search(r"Task tbal\.run_round\[(\S+)\] succeeded", line)) and any(
            e[1] == m.group(1) for e in events
        ):
            events.append(("end", m.group(1)))
    kinds = [kind for kind, _ in events]
    return kinds[:2] == ["start", "start"]


def test_a_round_delivered_twice_writes_nothing_twice(stack: Stack) -> None:
    data = load_digits_data()
    # Enough epochs that the first delivery is still training when the second one arrives.
    settings = {**DIGITS_SETTINGS, "label_budget": 200, "epochs": 300}
    client = stack.client
    project = client.post(
        f"{API}/projects",
        json={
            "name": "digits-twice",
            "classes": data.classes,
            "data_kind": data.data_kind,
            "input_shape": data.input_shape,
            "settings": settings,
        },
    ).json()
    pid = project["id"]
    from examples.demo import upload_items

    upload_items(client, pid, data)
    assert client.post(f"{API}/projects/{pid}/simulate").status_code == 200

    # The API enqueues the round once; the same message goes out again at once (two deliveries race:
    # the worker's two processes take one each) ...
    started = client.post(f"{API}/projects/{pid}/rounds")
    assert started.status_code == 202, started.text
    rid = started.json()["id"]
    stack.celery.send_task(RUN_ROUND_TASK, args=[rid], queue=GPU_QUEUE)
    done = wait_round(client, rid, poll_s=0.2, timeout_s=300)
    assert done["status"] == "succeeded", f"{done}\n{stack.log_tail()}"
    _broker_idle(stack)
    overlapped = _deliveries_overlapped(stack.log_tail(200), rid)
    print(f"\ntwo deliveries of round {rid} overlapped in the worker: {overlapped}")
    first = _snapshot(stack, pid, rid)
    assert first["round"]["attempts"] == 1  # only one delivery claimed the round
    assert first["counts"]["auto_labels"] == first["round"]["metrics"]["auto_labeled"] > 0
    # its training queries and the validation items it drew inside the stratum (loop.targeted_validation)
    assert first["round"]["n_queries"] == 100 and first["round"]["metrics"]["validation_queued"] > 0
    assert len(first["queue"]) == 100 + first["round"]["metrics"]["validation_queued"]
    truth = data.truth_by_external_id()
    human = fetch_all(client, f"{API}/projects/{pid}/labels")
    ev = evaluate(first["auto_labels"], human, truth, epsilon=EPSILON)
    assert ev.duplicate_auto == 0 and ev.auto_on_human == 0

    # ... and once more after the round finished (a redelivery after a lost acknowledgement).
    stack.celery.send_task(RUN_ROUND_TASK, args=[rid], queue=GPU_QUEUE)
    time.sleep(0.5)
    _broker_idle(stack)
    assert _snapshot(stack, pid, rid) == first


def _without_role(labels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in label.items() if k != "role"} for label in labels]


def test_a_killed_worker_process_loses_nothing(stack: Stack) -> None:
    client = stack.client
    pid = digits_project_ready(
        client, "digits-killed", {**DIGITS_SETTINGS, "label_budget": 200, "epochs": 2000}
    )
    humans_before = fetch_all(client, f"{API}/projects/{pid}/labels")
    rid = client.post(f"{API}/projects/{pid}/rounds").json()["id"]

    # Wait until the round trains, then kill the pool process that runs it.
    deadline = time.monotonic() + 120
    victim = None
    while victim is None and time.monotonic() < deadline:
        body = client.get(f"{API}/rounds/{rid}").json()
        if body["status"] == "running" and body["stage"] == "train":
            for tasks in (stack.celery.control.inspect(timeout=1.0).active() or {}).values():
                victim = next((t["worker_pid"] for t in tasks if t["args"] == [rid]), None)
        assert body["status"] in ("queued", "running"), body
        time.sleep(0.2)
    assert victim is not None, f"round {rid} never seen training:\n{stack.log_tail()}"
    os.kill(victim, signal.SIGKILL)
    started = time.perf_counter()

    done = wait_round(client, rid, poll_s=0.3, timeout_s=300)
    print(f"\nround {rid} finished {time.perf_counter() - started:.1f} s after its process was killed")
    assert done["status"] == "succeeded", f"{done}\n{stack.log_tail()}"
    assert done["attempts"] == 2  # the killed claim, then the take-over
    _broker_idle(stack)
    auto = fetch_all(client, f"{API}/projects/{pid}/auto-labels")
    assert len(auto) == len({a["item_id"] for a in auto}) == done["metrics"]["auto_labeled"] > 0
    # No human label changed (a validation item's role may: the round removes those it auto-labels).
    assert _without_role(fetch_all(client, f"{API}/projects/{pid}/labels")) == _without_role(humans_before)
    assert stack.worker.poll() is None, "the worker itself must survive the loss of a pool process"
