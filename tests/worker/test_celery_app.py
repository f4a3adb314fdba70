"""The Celery configuration: the delivery guarantees the worker relies on are set as documented."""

from __future__ import annotations

import pytest

from app.settings import Settings
from worker.celery_app import (
    GPU_QUEUE,
    HARD_LIMIT_GRACE_S,
    QUEUES,
    RUN_ROUND_TASK,
    TBALCelery,
    celery_app,
    make_celery,
)


@pytest.fixture
def app() -> TBALCelery:
    settings = Settings(
        database_url="sqlite:///unused.sqlite",
        broker_url="redis://127.0.0.1:6379/9",
        round_time_limit_s=1800.0,
    )
    return make_celery(settings)


def test_json_only(app: TBALCelery) -> None:
    assert app.conf.task_serializer == "json"
    assert app.conf.result_serializer == "json"
    assert list(app.conf.accept_content) == ["json"]
    assert list(app.conf.result_accept_content) == ["json"]


def test_delivery_flags(app: TBALCelery) -> None:
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1
    # A broker hiccup must not kill a running round (its redelivery finds the round final instead).
    assert app.conf.worker_cancel_long_running_tasks_on_connection_loss is False


def test_time_limits_and_visibility_timeout(app: TBALCelery) -> None:
    soft, hard = app.conf.task_soft_time_limit, app.conf.task_time_limit
    assert soft == 1800.0
    assert hard == 1800.0 + HARD_LIMIT_GRACE_S
    # Redis must not hand an unacknowledged round to a second worker while the first may still run it.
    assert app.conf.broker_transport_options["visibility_timeout"] > hard


def test_broker_and_results_from_settings(app: TBALCelery) -> None:
    assert app.conf.broker_url == "redis://127.0.0.1:6379/9"
    assert app.conf.result_backend is None
    assert app.conf.task_ignore_result is True
    with_results = make_celery(Settings(broker_url="redis://h:1/0", result_backend="redis://h:1/1"))
    assert with_results.conf.result_backend == "redis://h:1/1"
    assert with_results.conf.task_ignore_result is False


def test_queues_and_routes(app: TBALCelery) -> None:
    names = {q.name for q in app.conf.task_queues}
    assert names == set(QUEUES) == {"default", "gpu"}
    assert app.conf.task_default_queue == "default"
    # Rounds (training) go to the gpu queue by default, or where the settings send them.
    assert app.amqp.router.route({}, RUN_ROUND_TASK)["queue"].name == GPU_QUEUE
    cpu_only = make_celery(Settings(broker_url="redis://h:1/0", round_queue="default"))
    assert cpu_only.amqp.router.route({}, RUN_ROUND_TASK)["queue"].name == "default"
    # An explicit queue (the dispatcher's choice) wins over the route.
    assert app.amqp.router.route({"queue": "default"}, RUN_ROUND_TASK)["queue"].name == "default"


def test_round_task_registered_with_retry_policy(app: TBALCelery) -> None:
    import sqlalchemy.exc

    from worker.tasks import TRANSIENT_ERRORS

    task = app.tasks[RUN_ROUND_TASK]
    assert task.acks_late is True
    assert task.reject_on_worker_lost is True
    assert task.max_retries is not None and task.max_retries > 0
    assert task.retry_backoff and task.retry_jitter is True
    assert tuple(task.autoretry_for) == TRANSIENT_ERRORS
    assert sqlalchemy.exc.OperationalError in TRANSIENT_ERRORS
    # Algorithm errors are not retried (they mark the round failed instead).
    assert not any(issubclass(ValueError, err) for err in TRANSIENT_ERRORS)


def test_module_app_without_broker_imports() -> None:
    # The module-level application builds from the environment even when no broker is set
    # (the embedded default), so `tbal serve` can import the worker package.
    assert isinstance(celery_app, TBALCelery)
    assert celery_app.main == "tbal"
