"""What ``/health`` checks: the database answers, and the broker (when one is configured) accepts a
connection. The answer names what is down but never where it lives (host, port, database name): the
details go to the log, and ``/health`` needs no key."""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from app.errors import Unavailable
from app.rounds.dispatch import Dispatcher

logger = logging.getLogger(__name__)


def check_health(engine: Engine, dispatcher: Dispatcher) -> dict[str, str]:
    """``{"status": "ok", "database": "ok", "broker": "ok" | "none" (in-process rounds), ...}``;
    :class:`Unavailable` (503) naming the first component that is down, the reason listing all."""
    down = [
        name
        for name, ok in (("database", _database_ok(engine)), ("broker", _broker_ok(dispatcher)))
        if not ok
    ]
    if down:
        raise Unavailable(down[0], f"unreachable: {' and '.join(down)}; retry later")
    broker = "none" if dispatcher.name == "in-process" else "ok"
    return {"status": "ok", "database": "ok", "broker": broker, "dispatcher": dispatcher.name}


def _database_ok(engine: Engine) -> bool:
    try:
        connection = engine.raw_connection()  # no transaction: never waits behind SQLite's writer
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
        finally:
            connection.close()
    except Exception as exc:
        logger.warning("health: database unreachable: %s", _first_line(exc))
        return False
    return True


def _broker_ok(dispatcher: Dispatcher) -> bool:
    try:
        dispatcher.ping()
    except Exception as exc:
        logger.warning("health: broker unreachable: %s", _first_line(exc))
        return False
    return True


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.splitlines()[0][:300] if text else type(exc).__name__
