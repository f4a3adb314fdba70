"""Moved to :mod:`app.rounds.service` (issue 12: the round as one domain package);
this module re-exports its names for the code that still imports them from here."""

from app.rounds.service import (
    budget_used,
    get_round,
    queries_for_next_round,
    start_round,
)

__all__ = [
    "budget_used",
    "get_round",
    "queries_for_next_round",
    "start_round",
]
