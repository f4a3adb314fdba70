"""``tbal.label_studio_sync``: the periodic Label Studio sync of every connected project (queue pushed,
missed annotations pulled, auto-labels written back; see :mod:`app.integrations.label_studio.sync`).

Celery beat sends it every ``label_studio_sync_interval_s`` seconds to the ``default`` queue (run beat
once: ``celery -A worker.celery_app beat``, or a worker with ``-B``); one message syncs all projects, a
failure of one project is recorded as its event and the others go on. Idempotent: a second delivery
finds nothing new to push or pull.
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from worker.celery_app import LABEL_STUDIO_SYNC_TASK


@shared_task(name=LABEL_STUDIO_SYNC_TASK, bind=True, ignore_result=True, acks_late=True)
def label_studio_sync(self: Task) -> int:
    from app.integrations.label_studio.sync import sync_all
    from worker.tasks import _tbal_app

    app: Any = _tbal_app(self.app)
    return sync_all(app.session_factory(), app.tbal_settings)
