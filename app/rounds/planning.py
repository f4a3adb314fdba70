"""A project's round plan from its counts: the one place the service turns database rows into the
library's :class:`tbal.plan.RunState` (used when a round is started and when a worker loads it)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.db.models import Project
from app.items import repository as items_repo
from app.labels import repository as labels_repo
from app.rounds import repository as rounds_repo
from app.rounds import stratum_repository as stratum_repo
from tbal.config import TBALConfig
from tbal.plan import RoundPlan, RunState, plan_round


def plan_for_round(session: Session, project: Project, round_index: int, config: TBALConfig) -> RoundPlan:
    """Round ``round_index``'s plan (:func:`tbal.plan.plan_round`): training items so far (labeled or
    queued), the validation top-ups rounds bought (not the items drawn inside the stratum: those are paid
    from ``validation_size``), the δ the project's succeeded rounds spent, and whether a round fixed the
    stratum."""
    return plan_round(
        RunState(
            round_index=round_index,
            training_labels=items_repo.count_items(session, project.id, role="train"),
            validation_top_ups=labels_repo.count_validation_top_ups(session, project.id),
            delta_spent=rounds_repo.delta_spent(session, project.id),
            stratum_drawn=stratum_repo.is_fixed(session, project.id),
        ),
        config,
        run_seed=project.seed,
    )
