"""Starting rounds: the checks, the row, commit, then enqueue (a worker never sees an uncommitted row).

A round starts when no other round of the project is queued or running (409), the pool has unlabeled
items (409), there are training labels (409) and at least ``min_validation_labels`` human validation
labels (409; default: enough for non-empty D_cal and D_th, at least 2; see
:func:`app.projects.config.min_validation_labels`). Once the label budget is spent, one more
round runs without queries; after it, another round needs new human labels (409 otherwise).
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import Project, Round
from app.errors import Conflict, NotFound, Unavailable
from app.items import repository as items_repo
from app.labels import repository as labels_repo
from app.labels.queue_service import ensure_sets_drawn
from app.projects.config import min_validation_labels, project_config
from app.rounds import repository as rounds_repo
from app.rounds.dispatch import Dispatcher
from app.rounds.planning import plan_for_round

logger = logging.getLogger(__name__)


def budget_used(session: Session, project_id: int) -> int:
    """Labels paid from ``label_budget`` (N_t): training items (asked for or labeled unasked) and the
    validation top-ups rounds bought (``validation_floor``), as in :func:`tbal.loop.run_tbal`; not the
    validation items drawn inside the stratum (``targeted_validation``: paid from ``validation_size``)."""
    return items_repo.count_items(session, project_id, role="train") + labels_repo.count_validation_top_ups(
        session, project_id
    )


def queries_for_next_round(session: Session, project: Project) -> int:
    """How many human queries the next round may send: the round plan's query budget (min(batch, budget
    left), :func:`tbal.plan.plan_round`). A round with a ``validation_floor`` may spend part of them on
    validation top-ups; the rest are training queries."""
    index = rounds_repo.next_index(session, project.id)
    return plan_for_round(session, project, index, project_config(project)).query_budget


def start_round(session: Session, project: Project, dispatcher: Dispatcher) -> Round:
    ensure_sets_drawn(session, project)
    active = rounds_repo.active(session, project.id)
    if active is not None:
        raise Conflict("round", f"round {active.id} is {active.status}; wait until it finishes")
    config = project_config(project)
    need = min_validation_labels(project.settings, config)
    n_val = items_repo.count_labeled(session, project.id, "validation")
    if n_val < need:
        waiting = labels_repo.count_open_queries(session, project.id, "validation")
        raise Conflict(
            "validation_labels",
            f"a round needs at least {need} human validation labels, got {n_val} "
            f"({waiting} validation items are waiting in the queue)",
        )
    if items_repo.count_labeled(session, project.id, "train") == 0:
        raise Conflict("training_labels", "a round needs at least one human training label, got none")
    if items_repo.count_pool(session, project.id) == 0:
        raise Conflict("pool", "no unlabeled items are left in the pool")
    n_queries = queries_for_next_round(session, project)
    last = rounds_repo.last_succeeded(session, project.id)
    if (
        n_queries == 0
        and last is not None
        and last.n_queries == 0
        and last.started_at is not None
        and labels_repo.labels_updated_since(session, project.id, last.started_at) == 0
    ):
        raise Conflict(
            "label_budget",
            f"the label budget ({config.loop.label_budget}) is spent and round {last.id} already used "
            "every label; add human labels or raise label_budget",
        )
    if (
        config.loop.max_rounds is not None
        and rounds_repo.count_succeeded(session, project.id) >= config.loop.max_rounds
    ):
        raise Conflict("max_rounds", f"the project already ran max_rounds={config.loop.max_rounds} rounds")
    round_ = Round(
        project_id=project.id, index=rounds_repo.next_index(session, project.id), n_queries=n_queries
    )
    try:
        rounds_repo.add(session, round_)
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict("round", "another round of this project was started at the same time") from exc
    try:
        dispatcher.enqueue_round(round_.id)
    except Exception as exc:  # broker down: the round cannot run, say so
        logger.exception("could not enqueue round %s", round_.id)
        rounds_repo.fail(session, round_.id, f"could not enqueue: {exc}", utcnow())
        session.commit()
        raise Unavailable("broker", f"could not enqueue the round: {exc}") from exc
    return round_


def get_round(session: Session, round_id: int) -> Round:
    round_ = rounds_repo.get(session, round_id)
    if round_ is None:
        raise NotFound("round_id", f"no round {round_id}")
    return round_
