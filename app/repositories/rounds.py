"""Moved to :mod:`app.rounds.repository` (issue 12: the round as one domain package);
this module re-exports its names for the code that still imports them from here."""

from app.rounds.repository import (
    active,
    add,
    audit_counts,
    claim,
    count_all,
    count_succeeded,
    delta_spent,
    fail,
    fail_stale,
    get,
    last_succeeded,
    lock,
    next_index,
    page,
    stale_or_queued_ids,
    update_claimed,
)

__all__ = [
    "active",
    "add",
    "audit_counts",
    "claim",
    "count_all",
    "count_succeeded",
    "delta_spent",
    "fail",
    "fail_stale",
    "get",
    "last_succeeded",
    "lock",
    "next_index",
    "page",
    "stale_or_queued_ids",
    "update_claimed",
]
