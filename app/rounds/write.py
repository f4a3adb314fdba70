"""Writing a round's results: every one in ONE transaction, only while the claim token holds (auto-labels
unique per project and item, never over a human label; validation removals; next queries; the stratum
and the validation items drawn inside it, when the round fixes it; the audit sample; the report; the
status)."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from app.db.base import utcnow
from app.items import repository as items_repo
from app.labels import repository as labels_repo
from app.rounds import auto_labels_repository as auto_repo
from app.rounds import repository as rounds_repo
from app.rounds import stratum_repository as stratum_repo
from app.rounds.claim import ClaimLost
from app.rounds.load import LoadedRound
from app.rounds.report import WriteCounts, build_report
from tbal.plan import uniform_sample

if TYPE_CHECKING:
    from tbal.loop import RoundOutput

AUDIT_STREAM = 0xA0D17
"""Second word of the audit sample's seed (the first is the round's seed): its own random stream."""


def write_results(
    round_id: int,
    token: str,
    factory: sessionmaker[Session],
    loaded: LoadedRound,
    output: RoundOutput,
    *,
    model_version: str,
    artifact_path: Path,
    timings: dict[str, float],
) -> None:
    """Every result of the round in one transaction, only while ``token`` holds the claim."""
    start = time.perf_counter()
    with factory() as session:
        round_ = rounds_repo.lock(session, round_id)
        if round_ is None or round_.claim_token != token or round_.status != "running":
            raise ClaimLost(f"round {round_id} is no longer held by this worker")
        now = utcnow()
        counts = _write_decisions(session, round_id, loaded, output, now)
        timings = {**timings, **{k: float(v) for k, v in output.timings.items()}}
        timings["write"] = time.perf_counter() - start
        report = build_report(
            session,
            round_id,
            loaded,
            output,
            counts=counts,
            timings={k: round(v, 4) for k, v in timings.items()},
        )
        done = rounds_repo.update_claimed(
            session,
            round_id,
            token,
            status="succeeded",
            stage="done",
            progress=1.0,
            n_queries=counts.queried,
            metrics=report.to_dict(),
            model_version=model_version,
            artifact_path=str(artifact_path),
            finished_at=now,
            heartbeat_at=now,
        )
        if not done:
            raise ClaimLost(f"round {round_id} is no longer held by this worker")
        session.commit()


def _write_decisions(
    session: Session, round_id: int, loaded: LoadedRound, output: RoundOutput, now: datetime
) -> WriteCounts:
    """The round's decisions as rows (no commit): auto-labels, validation removals, training queries,
    validation top-ups, the stratum (:func:`fix_stratum`) and the audit sample; what each changed."""
    auto = np.asarray(output.auto_mask, dtype=bool)
    inserted = auto_repo.write(
        session,
        loaded.project_id,
        round_id,
        loaded.pool_ids[auto],
        output.auto_predicted,
        output.auto_scores,
        now,
    )
    removed_ids = loaded.val_ids[np.asarray(output.val_removed, dtype=bool)]
    removed = items_repo.set_role(session, removed_ids, "removed", only_from="validation")
    validation_left = items_repo.count_items(session, loaded.project_id, role="validation")
    pool_ids = loaded.pool_ids
    queried = labels_repo.add_round_queries(
        session, loaded.project_id, round_id, pool_ids[output.query_index], now
    )
    topped_up = labels_repo.add_round_queries(
        session, loaded.project_id, round_id, pool_ids[output.top_up_index], now, purpose="validation"
    )
    targeted = fix_stratum(session, round_id, loaded, output, now)
    audited = sample_audit(session, round_id, loaded, pool_ids[auto], now)
    return WriteCounts(inserted, removed, queried, audited, validation_left, topped_up, targeted)


def fix_stratum(
    session: Session, round_id: int, loaded: LoadedRound, output: RoundOutput, now: datetime
) -> int:
    """When the round fixes the stratum (its plan's ``targeted`` > 0, ``loop.targeted_validation``):
    record its members, the round's pool and validation items in it (as :func:`tbal.loop.run_tbal`
    records them), and queue the items drawn inside it to humans as validation items (purpose and role
    ``validation``), paid from ``validation_size``: marked ``targeted``, they are no top-ups
    (:func:`app.labels.repository.is_validation_top_up`). Returns how many were queued (0 in every other
    round)."""
    if output.pool_in_stratum is None or output.val_in_stratum is None:
        return 0
    targeted = loaded.pool_ids[np.asarray(output.targeted_index, dtype=np.int64)]
    in_pool = np.asarray(output.pool_in_stratum, dtype=bool)
    in_validation = np.asarray(output.val_in_stratum, dtype=bool)
    members = np.concatenate([loaded.pool_ids[in_pool], loaded.val_ids[in_validation]])
    cut = float("inf") if output.stratum_cut is None else output.stratum_cut
    stratum_repo.fix(
        session, loaded.project_id, round_id, cut=cut, members=members, targeted=targeted, now=now
    )
    return labels_repo.add_round_queries(
        session, loaded.project_id, round_id, targeted, now, purpose="validation"
    )


def sample_audit(
    session: Session, round_id: int, loaded: LoadedRound, auto_ids: np.ndarray, now: datetime
) -> int:
    """Audit mode: ``audit_size`` of this round's auto-labeled items, drawn uniformly without replacement
    (seeded by the round), go to the human queue with purpose ``audit``. Their role becomes ``audit``, so
    their human labels never train or validate a later round: they only measure the auto-labels' error
    (an unbiased sample of this round's auto-labels; see :mod:`app.rounds.audit_service`). Returns how
    many."""
    k = min(loaded.audit_size, int(auto_ids.size))
    if k <= 0:
        return 0
    sample = uniform_sample(auto_ids, k, loaded.plan.seed, AUDIT_STREAM)
    items_repo.set_role(session, sample, "audit", only_from="pool")
    labels_repo.add_queries(session, loaded.project_id, sample, "audit", round_id, now)
    return k
