"""Fixtures of the round tests (``app/rounds/``): the claim → load → run sequence of a worker, stopped
before the write so that a test can act in between (another worker, a human label, a delete).
The service's fixtures (``api``, ``make_project``, ``recorder``, ``ready_project``, ``FAST``) are those
of tests/app/conftest.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from app.rounds import claim as rounds_claim
from app.rounds.load import LoadedRound, load_round
from app.settings import Settings

if TYPE_CHECKING:
    from tbal.loop import RoundOutput


@dataclass
class RanRound:
    """A round claimed (``token``), loaded and run by the library, its results not written yet."""

    token: str
    loaded: LoadedRound
    output: RoundOutput


def claim_load_run(round_id: int, factory: sessionmaker[Session], settings: Settings) -> RanRound:
    """Claim round ``round_id``, load its arrays and run the library's round on them (its plan, the
    arrays; not the extras :mod:`app.rounds.run` adds: soft validation, the dataset guarantee's counts)."""
    from tbal.loop import RoundInput, run_round

    token = rounds_claim.claim(round_id, factory, settings)
    assert token is not None, f"round {round_id} could not be claimed"
    loaded = load_round(round_id, factory, settings)
    arrays = (loaded.X_train, loaded.targets_train, loaded.X_val, loaded.y_val, loaded.X_pool)
    output = run_round(
        RoundInput(*arrays, len(loaded.classes), plan=loaded.plan, stratum=loaded.stratum), loaded.config
    )
    return RanRound(token=token, loaded=loaded, output=output)
