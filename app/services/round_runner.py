"""Moved to the round's domain package ``app/rounds/`` (issue 12): :mod:`app.rounds.run` (execute_round),
:mod:`app.rounds.claim`, :mod:`app.rounds.load`, :mod:`app.rounds.write`, :mod:`app.rounds.report` and
:mod:`app.rounds.liveness`. This module re-exports the names that code elsewhere still imports from here
(the Label Studio integration, the API's round router, the worker's start-up hook, the scale benchmark).
Patch functions where they are looked up (``app.rounds.run``), not here.
"""

from app.rounds.claim import ClaimLost
from app.rounds.liveness import STAGE_WEIGHTS, Progress, RoundTimeLimit, reap_stale_rounds
from app.rounds.load import LABEL_REVIEW_FRACTION, LoadedRound, load_round
from app.rounds.report import LABEL_REVIEW_MAX
from app.rounds.run import execute_round
from app.rounds.write import AUDIT_STREAM, write_results

_Progress = Progress  # bench/scale_round.py wraps its report method

__all__ = [
    "AUDIT_STREAM",
    "LABEL_REVIEW_FRACTION",
    "LABEL_REVIEW_MAX",
    "STAGE_WEIGHTS",
    "ClaimLost",
    "LoadedRound",
    "Progress",
    "RoundTimeLimit",
    "execute_round",
    "load_round",
    "reap_stale_rounds",
    "write_results",
]
