"""What the application holds for its lifetime (on ``app.state.tbal``)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.metrics import Metrics
from app.rounds.dispatch import Dispatcher
from app.rounds.predict_service import ArtifactCache
from app.settings import Settings


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    dispatcher: Dispatcher
    metrics: Metrics
    artifacts: ArtifactCache
