"""Loading a round's inputs from the database as arrays, in one snapshot, with the round's plan
(:func:`tbal.plan.plan_round`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import HumanLabel, Item, Project, Round
from app.repositories import items as items_repo
from app.repositories import labels as labels_repo
from app.rounds import repository as rounds_repo
from app.rounds.claim import ClaimLost
from app.services import raw_items
from app.services.arrays import Layout, from_bytes, layout_of, model_inputs, pixel_scale
from app.services.project_config import runtime_config
from app.settings import Settings
from tbal.config import TBALConfig
from tbal.errors import TBALInputError
from tbal.plan import RoundPlan, RunState, plan_round

LABEL_REVIEW_FRACTION = 0.05
"""Default share of the training labels, lowest AUM first, listed for review (project setting
``label_review_fraction``); every label with AUM < 0 is listed too (see :func:`_label_review`)."""


@dataclass
class LoadedRound:
    """Everything a round reads from the database, as arrays."""

    project_id: int
    project_name: str
    classes: list[str]
    layout: Layout
    config: TBALConfig
    round_index: int
    plan: RoundPlan
    n_items: int
    input_scale: float | None
    train_ids: np.ndarray
    X_train: np.ndarray
    targets_train: np.ndarray
    val_ids: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    pool_ids: np.ndarray
    X_pool: np.ndarray
    audit_size: int = 0
    """Audit mode: auto-labels of this round to sample for human review (the project's ``audit_size``)."""
    val_human: np.ndarray | None = None
    """(n_v, K) the validation labels as distributions (one-hot where hard), when any label is soft."""
    val_soft: int = 0
    """Validation labels given as a distribution."""
    validation_pending: int = 0
    """Validation items queued for humans, not labeled yet (they count towards the floor)."""
    label_review_fraction: float = LABEL_REVIEW_FRACTION
    inputs: dict[str, str] = field(default_factory=dict)
    """Issue 13 hook: how the stored features were made (``{"encoder": spec}`` for text projects), recorded
    in the round's metrics beside its model version (app.services.raw_items.round_record)."""


def load_round(round_id: int, factory: sessionmaker[Session], settings: Settings) -> LoadedRound:
    """Read a round's inputs in one snapshot (REPEATABLE READ on PostgreSQL; SQLite's write lock)."""
    with factory() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        round_ = session.get(Round, round_id)
        project = session.get(Project, round_.project_id) if round_ is not None else None
        if round_ is None or project is None:
            raise ClaimLost(f"round {round_id} or its project no longer exists")
        config = runtime_config(project.settings, settings)
        layout = layout_of(project)
        k = len(project.classes)

        labeled = select(Item.id, Item.data, HumanLabel.label, HumanLabel.distribution).join(
            HumanLabel, HumanLabel.item_id == Item.id
        )
        n_train = items_repo.count_labeled(session, project.id, "train")
        train_stmt = labeled.where(Item.project_id == project.id, Item.role == "train").order_by(Item.id)
        train_ids, train_raw, train_extra = items_repo.load_rows(
            session, train_stmt, n_train, layout.row_bytes
        )
        targets, _ = _label_distributions(train_extra, k)

        n_val = items_repo.count_labeled(session, project.id, "validation")
        val_stmt = labeled.where(Item.project_id == project.id, Item.role == "validation").order_by(Item.id)
        val_ids, val_raw, val_extra = items_repo.load_rows(session, val_stmt, n_val, layout.row_bytes)
        y_val = np.fromiter((label for label, _ in val_extra), dtype=np.int64, count=n_val)
        val_distributions, val_soft = _label_distributions(val_extra, k)

        n_pool = items_repo.count_pool(session, project.id)
        pool_stmt = items_repo.pool_query(project.id, select(Item.id, Item.data)).order_by(Item.id)
        pool_ids, pool_raw = items_repo.load_id_data(session, pool_stmt, n_pool, layout.row_bytes)

        if n_train == 0:
            raise TBALInputError("a round needs at least one human training label, got none")
        if n_val < 2:
            raise TBALInputError(f"a round needs at least 2 human validation labels, got {n_val}")
        if n_pool == 0:
            raise TBALInputError("no unlabeled items are left in the pool")
        scale = pixel_scale(
            layout, train_raw, val_raw, pool_raw, configured=project.settings.get("pixel_scale")
        )
        plan = plan_round(
            RunState(
                round_index=round_.index,
                training_labels=items_repo.count_items(session, project.id, role="train"),
                validation_top_ups=labels_repo.count_validation_top_ups(session, project.id),
                delta_spent=rounds_repo.delta_spent(session, project.id),
            ),
            config,
            run_seed=project.seed,
        )
        n_items = items_repo.count_items(session, project.id)
        pending = items_repo.count_items(session, project.id, role="validation") - n_val
        loaded = LoadedRound(
            project_id=project.id,
            project_name=project.name,
            classes=list(project.classes),
            layout=layout,
            config=config,
            round_index=round_.index,
            plan=plan,
            n_items=n_items,
            train_ids=train_ids,
            input_scale=scale,
            X_train=model_inputs(layout, from_bytes(layout, train_raw), scale),
            targets_train=targets,
            val_ids=val_ids,
            X_val=model_inputs(layout, from_bytes(layout, val_raw), scale),
            y_val=y_val,
            pool_ids=pool_ids,
            X_pool=model_inputs(layout, from_bytes(layout, pool_raw), scale),
            audit_size=int(project.settings.get("audit_size") or 0),
            val_human=val_distributions if val_soft else None,
            val_soft=val_soft,
            label_review_fraction=_setting_or(
                project.settings, "label_review_fraction", LABEL_REVIEW_FRACTION
            ),
            validation_pending=pending,
            inputs=raw_items.round_record(project.settings, project.data_kind),  # issue 13 hook
        )
        session.commit()
    return loaded


def _label_distributions(rows: list[Any], k: int) -> tuple[np.ndarray, int]:
    """(n, K) float32 target distributions of (label, distribution) rows, one-hot where a label has no
    distribution of K values; and how many rows had one."""
    targets = np.zeros((len(rows), k), dtype=np.float32)
    soft = 0
    for row, (label, distribution) in enumerate(rows):
        if distribution is not None and len(distribution) == k:
            targets[row] = distribution
            soft += 1
        else:
            targets[row, label] = 1.0
    return targets, soft


def _setting_or(project_settings: dict[str, Any], name: str, default: float) -> float:
    value = project_settings.get(name)
    return default if value is None else float(value)
