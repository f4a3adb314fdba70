"""The ``tbal.run_round`` task called eagerly on SQLite: it runs the round, a second delivery writes
nothing twice, transient errors are retried (and mark the round failed when the retries are spent),
other errors are not retried."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

import app.rounds.run as round_run
from app.db.base import utcnow
from app.db.models import Round
from app.settings import Settings
from tests.worker.conftest import Client, queued_round, table_counts
from worker.celery_app import RUN_ROUND_TASK, TBALCelery
from worker.tasks import STALE_MARGIN_S


def _transient() -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))


def test_task_runs_the_round_and_a_second_delivery_writes_nothing(
    client: Client, celery: TBALCelery, session_factory: sessionmaker[Session]
) -> None:
    _pid, rid = queued_round(client)
    task = celery.tasks[RUN_ROUND_TASK]
    result = task.apply(args=[rid])
    assert result.successful(), result.traceback
    body = client.get(f"/api/v1/rounds/{rid}").json()
    assert body["status"] == "succeeded", body
    assert body["attempts"] == 1
    first = table_counts(session_factory)
    assert first["auto_labels"] == body["metrics"]["auto_labeled"] > 0

    again = task.apply(args=[rid])  # the same message delivered again
    assert again.successful(), again.traceback
    assert table_counts(session_factory) == first
    assert client.get(f"/api/v1/rounds/{rid}").json() == body


def test_transient_error_is_retried_until_the_round_succeeds(
    client: Client,
    celery: TBALCelery,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _pid, rid = queued_round(client)
    real_write = round_run.write_results
    calls = {"n": 0}

    def flaky_write(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise _transient()
        return real_write(*args, **kwargs)

    monkeypatch.setattr(round_run, "write_results", flaky_write)
    result = celery.tasks[RUN_ROUND_TASK].apply(args=[rid])
    assert result.successful(), result.traceback
    assert calls["n"] == 3
    body = client.get(f"/api/v1/rounds/{rid}").json()
    assert body["status"] == "succeeded" and body["attempts"] == 3
    assert table_counts(session_factory)["auto_labels"] == body["metrics"]["auto_labeled"]


def test_spent_retries_mark_the_round_failed(
    client: Client, celery: TBALCelery, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pid, rid = queued_round(client)
    calls = {"n": 0}

    def always_down(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        raise _transient()

    monkeypatch.setattr(round_run, "write_results", always_down)
    task = celery.tasks[RUN_ROUND_TASK]
    monkeypatch.setattr(task, "max_retries", 2)
    result = task.apply(args=[rid])
    assert result.failed()
    assert isinstance(result.result, OperationalError)
    assert calls["n"] == 3  # the first try and two retries
    body = client.get(f"/api/v1/rounds/{rid}").json()
    assert body["status"] == "failed"
    assert body["error"].startswith("gave up after 2 retries: OperationalError")


def test_other_errors_are_not_retried(
    client: Client, celery: TBALCelery, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pid, rid = queued_round(client)
    calls = {"n": 0}

    def broken(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        raise RuntimeError("a bug")

    # Below execute_round a bug marks the round failed (not retried, not raised to Celery) ...
    monkeypatch.setattr(round_run, "write_results", broken)
    result = celery.tasks[RUN_ROUND_TASK].apply(args=[rid])
    assert result.successful() and calls["n"] == 1
    body = client.get(f"/api/v1/rounds/{rid}").json()
    assert body["status"] == "failed" and "RuntimeError: a bug" in body["error"]

    # ... and one that escapes the round function fails the task once, without a retry.
    monkeypatch.setattr(round_run, "execute_round", broken)
    result = celery.tasks[RUN_ROUND_TASK].apply(args=[rid])
    assert result.failed() and isinstance(result.result, RuntimeError) and calls["n"] == 2


@pytest.mark.parametrize("bad", ["7", 0, -3, True, 1.5, None])
def test_bad_round_ids_are_refused(celery: TBALCelery, bad: Any) -> None:
    result = celery.tasks[RUN_ROUND_TASK].apply(args=[bad])
    assert result.failed()
    assert isinstance(result.result, TypeError)
    assert "positive integer round id" in str(result.result)


def test_unknown_round_is_a_no_op(celery: TBALCelery, session_factory: sessionmaker[Session]) -> None:
    before = table_counts(session_factory)
    assert celery.tasks[RUN_ROUND_TASK].apply(args=[424242]).successful()
    assert table_counts(session_factory) == before


def test_a_round_running_elsewhere_is_watched_and_taken_over_when_its_runner_dies(
    client: Client,
    celery: TBALCelery,
    session_factory: sessionmaker[Session],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _pid, rid = queued_round(client)

    def hold(heartbeat: datetime) -> None:
        with session_factory() as session:
            session.execute(
                update(Round)
                .where(Round.id == rid)
                .values(
                    status="running",
                    claim_token="other",
                    attempts=1,
                    started_at=heartbeat,
                    heartbeat_at=heartbeat,
                )
            )
            session.commit()

    hold(utcnow())  # another delivery holds the round and is alive
    task = celery.tasks[RUN_ROUND_TASK]
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(task, "apply_async", lambda **kw: sent.append(kw))
    assert task.apply(args=[rid]).successful()
    assert sent == [{"args": [rid], "countdown": settings.round_stale_after_s + STALE_MARGIN_S}]
    body = client.get(f"/api/v1/rounds/{rid}").json()
    assert body["status"] == "running" and body["attempts"] == 1
    assert table_counts(session_factory)["auto_labels"] == 0

    # The holder died: by the time the watching message comes, its heartbeat is stale.
    hold(utcnow() - timedelta(seconds=settings.round_stale_after_s + 1))
    assert task.apply(args=[rid]).successful()
    body = client.get(f"/api/v1/rounds/{rid}").json()
    assert body["status"] == "succeeded" and body["attempts"] == 2
    assert table_counts(session_factory)["auto_labels"] == body["metrics"]["auto_labeled"]
    assert len(sent) == 1  # a final round is not watched
