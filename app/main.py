"""The FastAPI application: ``create_app(settings) -> FastAPI``.

Routes live under ``/api/v1`` (OpenAPI at ``/api/v1/openapi.json``, docs at ``/api/v1/docs``) and need
an API key; ``/health`` does not; ``/metrics`` (Prometheus) does.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import APIRouter, Depends, FastAPI

import tbal
from app.api import system
from app.api.deps import require_api_key
from app.dashboard import router as dashboard_router
from app.db.base import utcnow
from app.db.session import make_engine, make_session_factory
from app.errors import install_error_handlers
from app.integrations.label_studio.router import router as label_studio_router
from app.integrations.label_studio.sync import Syncer
from app.items import raw_router as raw_items_router
from app.items import router as items_router
from app.items.jobs_service import resume_jobs
from app.labels import queue_router
from app.labels import router as labels_router
from app.metrics import Metrics
from app.middleware import BodySizeLimit, RequestMetrics
from app.projects import keys_router
from app.projects import router as projects_router
from app.rounds import auto_labels_router, predict_router
from app.rounds import repository as rounds_repo
from app.rounds import router as rounds_router
from app.rounds.dispatch import InProcessDispatcher, make_dispatcher
from app.rounds.predict_service import ArtifactCache
from app.settings import Settings, get_settings
from app.state import AppState

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
API_ROUTERS = (
    projects_router,
    items_router,
    raw_items_router,
    labels_router,
    queue_router,
    rounds_router,
    auto_labels_router,
    predict_router,
    keys_router,
)
"""The modules whose ``router`` is served under :data:`API_PREFIX` with an API key, in this order (the
order of the OpenAPI document's paths)."""


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application for ``settings`` (default: from ``TBAL_*`` environment variables). The database
    must already be migrated (``tbal migrate``; ``tbal serve`` does it on SQLite)."""
    settings = settings or get_settings()
    engine = make_engine(settings)
    factory = make_session_factory(engine)
    state = AppState(
        settings=settings,
        engine=engine,
        session_factory=factory,
        dispatcher=make_dispatcher(settings, factory),
        metrics=Metrics(factory),
        artifacts=ArtifactCache(device=settings.train_device),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        syncer = None
        if isinstance(state.dispatcher, InProcessDispatcher):
            _resume_rounds(state)
            resume_jobs(state.dispatcher, state.session_factory, state.settings.round_stale_after_s)
            # embedded mode: Label Studio sync at start-up and on a timer (workers: a Celery beat task)
            syncer = Syncer(state.session_factory, state.settings)
            syncer.start()
        try:
            yield
        finally:
            if syncer is not None:
                syncer.stop()
            state.dispatcher.close()
            engine.dispose()

    app = FastAPI(
        title="tbal",
        version=tbal.__version__,
        summary="Threshold-based auto-labeling with an error guarantee",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.tbal = state
    install_error_handlers(app)
    app.add_middleware(
        BodySizeLimit, max_bytes=settings.max_request_bytes, max_json_bytes=settings.max_json_bytes
    )
    app.add_middleware(RequestMetrics, metrics=state.metrics)

    api = APIRouter(prefix=API_PREFIX, dependencies=[Depends(require_api_key)])
    for module in API_ROUTERS:
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(system.router)
    app.include_router(dashboard_router)
    app.include_router(label_studio_router)
    return app


def _resume_rounds(state: AppState) -> None:
    """Embedded mode: rounds left queued (or running with a stale heartbeat) by a previous process run."""
    try:
        stale_before = utcnow() - timedelta(seconds=state.settings.round_stale_after_s)
        with state.session_factory() as session:
            ids = rounds_repo.stale_or_queued_ids(session, stale_before)
            session.rollback()
    except Exception as exc:
        logger.warning("could not look for unfinished rounds: %s", exc)
        return
    for round_id in ids:
        logger.info("resuming round %s", round_id)
        state.dispatcher.enqueue_round(round_id)
