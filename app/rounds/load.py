"""Loading a round's inputs from the database as arrays, in one snapshot, with the round's plan
(:func:`tbal.plan.plan_round`)."""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Item, Project, Round
from app.items import raw as raw_items
from app.items import repository as items_repo
from app.items.arrays import Layout, from_bytes, layout_of, model_inputs, pixel_scale
from app.labels import repository as labels_repo
from app.projects.config import runtime_config
from app.rounds import auto_labels_repository as auto_repo
from app.rounds import repository as rounds_repo
from app.rounds import stratum_repository as stratum_repo
from app.rounds.claim import ClaimLost
from app.rounds.planning import plan_for_round
from app.settings import Settings
from tbal.config import TBALConfig
from tbal.errors import TBALInputError
from tbal.loop import LabeledSoFar, Stratum
from tbal.models import Classifier
from tbal.plan import RoundPlan, may_auto_label
from tbal.reports import RoundReport, RoundReportError
from tbal.training.warm_start import wants_previous

logger = logging.getLogger(__name__)

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
    labeled_so_far: LabeledSoFar | None = None
    """The ``dataset`` guarantee's counts: human labels, earlier auto-labels and their certified mistakes."""
    stratum: Stratum | None = None
    """The stratum an earlier round fixed, as flags over this round's pool and validation items (None: no
    round fixed one); the round then certifies and auto-labels inside it only."""
    warm_start: Classifier | None = None
    """The last succeeded round's classifier, which this round continues (train.warm_start_epochs > 0 in a
    round that train.warm_start_rounds names: tbal.training.warm_start); None: the round trains a fresh
    one."""
    inputs: dict[str, str] = field(default_factory=dict)
    """Issue 13 hook: how the stored features were made (``{"encoder": spec}`` for text projects), recorded
    in the round's metrics beside its model version (app.items.raw.round_record)."""


def load_round(round_id: int, factory: sessionmaker[Session], settings: Settings) -> LoadedRound:
    """Read a round's inputs in one snapshot (REPEATABLE READ on PostgreSQL; SQLite's write lock)."""
    with factory() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        round_ = session.get(Round, round_id)
        project = session.get(Project, round_.project_id) if round_ is not None else None
        if round_ is None or project is None:
            raise ClaimLost(f"round {round_id} or its project no longer exists")
        layout = layout_of(project)
        k = len(project.classes)
        train_ids, train_raw, train_extra = _labeled_rows(session, project.id, "train", layout)
        val_ids, val_raw, val_extra = _labeled_rows(session, project.id, "validation", layout)
        n_pool = items_repo.count_pool(session, project.id)
        pool_stmt = items_repo.pool_query(project.id, select(Item.id, Item.data)).order_by(Item.id)
        pool_ids, pool_raw = items_repo.load_id_data(session, pool_stmt, n_pool, layout.row_bytes)
        _check_counts(train_ids.size, val_ids.size, n_pool)

        config = runtime_config(project.settings, settings, base=project.base_config)
        scale = _input_scale(session, project, layout, train_raw, val_raw, pool_raw)
        targets, _ = _label_distributions(train_extra, k)
        val_distributions, val_soft = _label_distributions(val_extra, k)
        loaded = LoadedRound(
            project_id=project.id,
            project_name=project.name,
            classes=list(project.classes),
            layout=layout,
            config=config,
            round_index=round_.index,
            plan=plan_for_round(session, project, round_.index, config),
            n_items=items_repo.count_items(session, project.id),
            train_ids=train_ids,
            input_scale=scale,
            X_train=model_inputs(layout, from_bytes(layout, train_raw), scale),
            targets_train=targets,
            val_ids=val_ids,
            X_val=model_inputs(layout, from_bytes(layout, val_raw), scale),
            y_val=np.fromiter((label for label, _ in val_extra), dtype=np.int64, count=val_ids.size),
            pool_ids=pool_ids,
            X_pool=model_inputs(layout, from_bytes(layout, pool_raw), scale),
            audit_size=int(project.settings.get("audit_size") or 0),
            val_human=val_distributions if val_soft else None,
            val_soft=val_soft,
            label_review_fraction=_setting_or(
                project.settings, "label_review_fraction", LABEL_REVIEW_FRACTION
            ),
            validation_pending=items_repo.count_items(session, project.id, role="validation") - val_ids.size,
            labeled_so_far=_labeled_so_far(session, project.id, config),
            stratum=_stratum(session, project.id, pool_ids, val_ids),
            inputs=raw_items.round_record(project.settings, project.data_kind),  # issue 13 hook
        )
        previous = _warm_start_artifact(session, project.id, loaded.plan, config)
        session.commit()
    loaded.warm_start = _previous_classifier(previous)
    return loaded


def _warm_start_artifact(
    session: Session, project_id: int, plan: RoundPlan, config: TBALConfig
) -> Path | None:
    """The artifact of the last succeeded round when this round would continue its classifier (the library's
    rule: :func:`tbal.training.warm_start.wants_previous`), else None."""
    if not wants_previous(config, may_auto_label(plan, config)):
        return None
    last = rounds_repo.last_succeeded(session, project_id)
    return Path(last.artifact_path) if last is not None and last.artifact_path else None


def _previous_classifier(path: Path | None) -> Classifier | None:
    """The classifier saved at ``path``; None where there is none or it cannot be read (the round then
    trains a fresh classifier, as without warm starts: slower, never wrong)."""
    if path is None or not path.is_file():
        return None
    from tbal.artifacts import load_artifacts

    try:
        return load_artifacts(path).model
    except (OSError, ValueError, RuntimeError, KeyError, pickle.UnpicklingError) as exc:
        logger.warning("warm start: cannot read %s (%s); training a fresh classifier", path, exc)
        return None


def _labeled_rows(
    session: Session, project_id: int, role: str, layout: Layout
) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """Item ids (sorted), stored bytes (n, row_bytes) and (label, distribution) of the human-labeled
    items of ``role``."""
    n = items_repo.count_labeled(session, project_id, role)
    ids, raw, extra = items_repo.load_rows(
        session, rounds_repo.labeled_items(project_id, role), n, layout.row_bytes
    )
    return ids, raw, list(extra)


def _check_counts(n_train: int, n_val: int, n_pool: int) -> None:
    if n_train == 0:
        raise TBALInputError("a round needs at least one human training label, got none")
    if n_val < 2:
        raise TBALInputError(f"a round needs at least 2 human validation labels, got {n_val}")
    if n_pool == 0:
        raise TBALInputError("no unlabeled items are left in the pool")


def _input_scale(session: Session, project: Project, layout: Layout, *raws: np.ndarray) -> float | None:
    """The pixel divisor of the round: the project's ``pixel_scale`` when set; else the larger of what
    the round's own arrays need (:func:`app.items.arrays.pixel_scale`: 16 for 4-bit images, else 255)
    and what the project's last finished round used. So a 0..255 project whose remaining items happen to
    be dark (every pixel ≤ 16) keeps 255, and a model is never fed inputs on another scale than the
    rounds before (the scale is also saved in each round's artifact for prediction)."""
    configured = project.settings.get("pixel_scale")
    scale = pixel_scale(layout, *raws, configured=configured)
    if scale is None or configured:
        return scale
    last = rounds_repo.last_succeeded(session, project.id)
    try:
        before = (
            RoundReport.from_dict(last.metrics).input_scale if last is not None and last.metrics else None
        )
    except RoundReportError:
        before = None
    return max(scale, before) if before is not None else scale


def _labeled_so_far(session: Session, project_id: int, config: TBALConfig) -> LabeledSoFar | None:
    """What the ``dataset`` guarantee counts besides the round (:class:`tbal.loop.LabeledSoFar`): the
    project's human labels (taken as correct), its auto-labels so far and the sum of the mistake bounds
    their rounds certified (the round report's ``auto_mistakes_bound``). None for the other guarantees."""
    if config.thresholds.guarantee != "dataset":
        return None
    return LabeledSoFar(
        human_labels=labels_repo.count_human_labels(session, project_id),
        auto_labels=auto_repo.count(session, project_id),
        mistakes_bound=rounds_repo.auto_mistakes_spent(session, project_id),
    )


def _stratum(session: Session, project_id: int, pool_ids: np.ndarray, val_ids: np.ndarray) -> Stratum | None:
    """The stratum over the round's items (:class:`tbal.loop.Stratum`): which pool and which (labeled)
    validation items are in it, and which validation items were drawn inside it. Items without a row
    (uploaded after it was fixed, or validation items still unlabeled then) are outside it."""
    stored = stratum_repo.load(session, project_id)
    if stored is None:
        return None
    in_pool, _ = stored.flags(pool_ids)
    in_validation, targeted = stored.flags(val_ids)
    return Stratum(pool=in_pool, validation=in_validation, targeted=targeted)


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
