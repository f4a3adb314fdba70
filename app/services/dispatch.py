"""Moved to :mod:`app.rounds.dispatch` (issue 12: the round as one domain package);
this module re-exports its names for the code that still imports them from here."""

from app.rounds.dispatch import (
    ROUND_TASK,
    RUN_ROUND_TASK,
    CeleryDispatcher,
    Dispatcher,
    InProcessDispatcher,
    make_dispatcher,
)

__all__ = [
    "ROUND_TASK",
    "RUN_ROUND_TASK",
    "CeleryDispatcher",
    "Dispatcher",
    "InProcessDispatcher",
    "make_dispatcher",
]
