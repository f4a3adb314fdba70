"""Claiming a round (a short transaction: the row under ``SELECT ... FOR UPDATE``, then a conditional
update that also takes over a running round whose heartbeat is stale), failing it with a reason, and
giving it back after a transient error. The claim token guards every later write."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from app.db.base import utcnow
from app.rounds import repository as rounds_repo
from app.settings import Settings

logger = logging.getLogger(__name__)


class ClaimLost(Exception):
    """Another worker took the round over (this one was too slow to send a heartbeat)."""


def claim(round_id: int, factory: sessionmaker[Session], settings: Settings) -> str | None:
    with factory() as session:
        round_ = rounds_repo.lock(session, round_id)
        if round_ is None:
            logger.warning("round %s does not exist; nothing to do", round_id)
            return None
        now = utcnow()
        stale_before = now - timedelta(seconds=settings.round_stale_after_s)
        if round_.status in ("succeeded", "failed"):
            return None
        if (
            round_.status == "running"
            and round_.heartbeat_at is not None
            and round_.heartbeat_at >= stale_before
        ):
            logger.info("round %s is running elsewhere", round_id)
            return None
        token = uuid.uuid4().hex
        if not rounds_repo.claim(session, round_id, token, now, stale_before):
            session.rollback()
            return None
        session.commit()
        return token


def fail(round_id: int, token: str, factory: sessionmaker[Session], reason: str) -> None:
    logger.warning("round %s failed: %s", round_id, reason)
    with factory() as session:
        rounds_repo.update_claimed(
            session,
            round_id,
            token,
            status="failed",
            error=reason[:4000],
            finished_at=utcnow(),
            claim_token=None,
        )
        session.commit()


def give_back(round_id: int, token: str, factory: sessionmaker[Session]) -> None:
    """After a transient error: the round goes back to queued so that a retry can claim it at once."""
    try:
        with factory() as session:
            rounds_repo.update_claimed(
                session, round_id, token, status="queued", stage=None, progress=0.0, claim_token=None
            )
            session.commit()
    except Exception:  # the database is still away: the heartbeat goes stale and a retry takes it over
        logger.warning("round %s: could not give the claim back; it will be taken over when stale", round_id)
