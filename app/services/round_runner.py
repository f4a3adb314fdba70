"""THE round function, shared by the Celery worker and the in-process dispatcher.

``execute_round(round_id, session_factory, settings)``:

1. claims the round in a short transaction (the row under ``SELECT ... FOR UPDATE``, then a conditional
   ``UPDATE ... WHERE status = 'queued'`` that also takes over a running round whose heartbeat is stale,
   i.e. whose worker died); returns at once if the round is final or running elsewhere;
2. loads the arrays (one consistent snapshot) and calls :func:`tbal.loop.run_round`, while a heartbeat
   thread writes stage, progress and a timestamp to the round row (throttled);
3. saves the artifacts (``<artifacts_dir>/<project id>/<project>-r<index>.pt``, written atomically);
4. writes every result in ONE transaction, only if it still holds the claim: auto-labels (unique per
   project and item, never over a human label), validation removals, next queries (training, and
   validation top-ups when the project has a ``validation_floor``), metrics, status.

A crash leaves nothing half-written and a re-delivered task writes nothing twice. Library input and
configuration errors mark the round failed with a readable reason; transient database errors
(``OperationalError``) give the round back (status queued) and propagate so that Celery can retry.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.db.base import utcnow
from app.db.models import HumanLabel, Item, Project, Round
from app.errors import DomainError
from app.repositories import auto_labels as auto_repo
from app.repositories import items as items_repo
from app.repositories import labels as labels_repo
from app.repositories import rounds as rounds_repo
from app.services import raw_items
from app.services.arrays import Layout, from_bytes, layout_of, model_inputs, pixel_scale
from app.services.project_config import runtime_config
from app.settings import Settings
from tbal.config import ConfigError, TBALConfig
from tbal.errors import TBALInputError
from tbal.plan import RoundPlan, RunState, plan_round, uniform_sample
from tbal.round_report import ClassReport, LabelReview, Reliability, RoundReport, TrueError

if TYPE_CHECKING:
    from tbal.loop import RoundOutput

logger = logging.getLogger(__name__)

STAGE_WEIGHTS: dict[str, float] = {
    "load": 0.05,
    "train": 0.55,
    "calibrate": 0.15,
    "thresholds": 0.05,
    "auto-label": 0.1,
    "query": 0.05,
    "write": 0.05,
}


LABEL_REVIEW_FRACTION = 0.05
"""Default share of the training labels, lowest AUM first, listed for review (project setting
``label_review_fraction``); every label with AUM < 0 is listed too (see :func:`_label_review`)."""
LABEL_REVIEW_MAX = 1000
"""Most labels a round stores for review: bounds the round's metrics row whatever the label budget."""

AUDIT_STREAM = 0xA0D17
"""Second word of the audit sample's seed (the first is the round's seed): its own random stream."""


class RoundTimeLimit(Exception):
    """The round ran longer than ``settings.round_time_limit_s``."""


class ClaimLost(Exception):
    """Another worker took the round over (this one was too slow to send a heartbeat)."""


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


def execute_round(round_id: int, session_factory: sessionmaker[Session], settings: Settings) -> None:
    """Run round ``round_id`` to its end (see the module docstring). Safe to call twice."""
    token = _claim(round_id, session_factory, settings)
    if token is None:
        return
    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)
    tracker = _Progress(round_id, token, session_factory, settings)
    tracker.start()
    try:
        _run_claimed(round_id, token, session_factory, settings, tracker)
    except OperationalError:
        tracker.stop()
        _give_back(round_id, token, session_factory)
        raise
    except ClaimLost:
        logger.warning("round %s: claim lost to another worker; nothing written", round_id)
    except (TBALInputError, ConfigError, DomainError, RoundTimeLimit) as exc:
        _fail(round_id, token, session_factory, f"{type(exc).__name__}: {exc}")
    except Exception as exc:
        if type(exc).__name__ in ("SoftTimeLimitExceeded", "TimeLimitExceeded"):
            _fail(round_id, token, session_factory, "time limit exceeded")
        else:
            logger.exception("round %s failed", round_id)
            _fail(round_id, token, session_factory, f"internal error: {type(exc).__name__}: {exc}")
    finally:
        tracker.stop()


def _run_claimed(
    round_id: int, token: str, factory: sessionmaker[Session], settings: Settings, tracker: _Progress
) -> None:
    from tbal.artifacts import RoundArtifacts, save_artifacts
    from tbal.loop import RoundInput, run_round

    timings: dict[str, float] = {}
    start = time.perf_counter()
    loaded = load_round(round_id, factory, settings)
    timings["load"] = time.perf_counter() - start
    tracker.report("train", 0.0)
    output = run_round(
        RoundInput(
            X_train=loaded.X_train,
            targets_train=loaded.targets_train,
            X_val=loaded.X_val,
            y_val=loaded.y_val,
            X_pool=loaded.X_pool,
            num_classes=len(loaded.classes),
            plan=loaded.plan,
            validation_pending=loaded.validation_pending,
            human_val=loaded.val_human,
            record_aum=True,
        ),
        loaded.config,
        progress=tracker.report,
    )
    tracker.report("write", 0.0)
    start = time.perf_counter()
    model_version = f"{loaded.project_name}-r{loaded.round_index}"
    path = Path(settings.artifacts_dir) / str(loaded.project_id) / f"{model_version}.pt"
    save_artifacts(
        path,
        RoundArtifacts(
            model=output.model,
            confidence=output.confidence,
            thresholds=output.thresholds.thresholds,
            model_config=loaded.config.model,
            input_shape=tuple(loaded.X_train.shape[1:]),
            num_classes=len(loaded.classes),
            input_scale=loaded.input_scale,
            encoder=loaded.inputs.get("encoder"),
        ),
    )
    timings["save"] = time.perf_counter() - start
    tracker.stop()
    write_results(
        round_id,
        token,
        factory,
        loaded,
        output,
        model_version=model_version,
        artifact_path=path,
        timings=timings,
    )


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
        auto = np.asarray(output.auto_mask, dtype=bool)
        inserted = auto_repo.write(
            session,
            loaded.project_id,
            round_id,
            loaded.pool_ids[auto],
            np.asarray(output.pool_predicted)[auto],
            np.asarray(output.pool_scores)[auto],
            now,
        )
        removed_ids = loaded.val_ids[np.asarray(output.val_removed, dtype=bool)]
        removed = items_repo.set_role(session, removed_ids, "removed", only_from="validation")
        validation_left = items_repo.count_items(session, loaded.project_id, role="validation")
        queried = labels_repo.add_round_queries(
            session, loaded.project_id, round_id, loaded.pool_ids[output.query_index], now
        )
        topped_up = labels_repo.add_round_queries(
            session,
            loaded.project_id,
            round_id,
            loaded.pool_ids[output.top_up_index],
            now,
            purpose="validation",
        )
        audited = _sample_audit(session, round_id, loaded, loaded.pool_ids[auto], now)
        timings = {**timings, **{k: float(v) for k, v in output.timings.items()}}
        timings["write"] = time.perf_counter() - start
        report = _report(
            session,
            round_id,
            loaded,
            output,
            counts=_WriteCounts(inserted, removed, queried, audited, validation_left, topped_up),
            timings={k: round(v, 4) for k, v in timings.items()},
        )
        done = rounds_repo.update_claimed(
            session,
            round_id,
            token,
            status="succeeded",
            stage="done",
            progress=1.0,
            n_queries=queried,
            metrics=report.to_dict(),
            model_version=model_version,
            artifact_path=str(artifact_path),
            finished_at=now,
            heartbeat_at=now,
        )
        if not done:
            raise ClaimLost(f"round {round_id} is no longer held by this worker")
        session.commit()


def _sample_audit(
    session: Session, round_id: int, loaded: LoadedRound, auto_ids: np.ndarray, now: datetime
) -> int:
    """Audit mode: ``audit_size`` of this round's auto-labeled items, drawn uniformly without replacement
    (seeded by the round), go to the human queue with purpose ``audit``. Their role becomes ``audit``, so
    their human labels never train or validate a later round: they only measure the auto-labels' error
    (an unbiased sample of this round's auto-labels; see :mod:`app.services.audit`). Returns how many."""
    k = min(loaded.audit_size, int(auto_ids.size))
    if k <= 0:
        return 0
    sample = uniform_sample(auto_ids, k, loaded.plan.seed, AUDIT_STREAM)
    items_repo.set_role(session, sample, "audit", only_from="pool")
    labels_repo.add_queries(session, loaded.project_id, sample, "audit", round_id, now)
    return k


@dataclass(frozen=True)
class _WriteCounts:
    """What the round's write changed: auto-labels inserted, validation items removed, training queries
    and validation top-ups queued, audit items sampled, and validation items left."""

    inserted: int
    removed: int
    queried: int
    audited: int
    validation_left: int
    topped_up: int


def _report(
    session: Session,
    round_id: int,
    loaded: LoadedRound,
    output: RoundOutput,
    *,
    counts: _WriteCounts,
    timings: dict[str, float],
) -> RoundReport:
    """The round's typed report (:class:`tbal.round_report.RoundReport`), stored as its metrics."""
    th = output.thresholds
    n_round, known_round, wrong_round = auto_repo.error_stats(
        session, project_id=loaded.project_id, round_id=round_id
    )
    n_total, known_total, wrong_total = auto_repo.error_stats(session, project_id=loaded.project_id)
    n_pool = int(loaded.pool_ids.size)
    cfg = loaded.config
    return RoundReport(
        pool_size=n_pool,
        auto_labeled=counts.inserted,
        auto_labeled_total=n_total,
        coverage=counts.inserted / n_pool if n_pool else 0.0,
        coverage_total=n_total / loaded.n_items if loaded.n_items else 0.0,
        validation_labels=int(loaded.val_ids.size),
        validation_removed=counts.removed,
        training_labels=int(loaded.train_ids.size),
        human_labels=labels_repo.count_human_labels(session, loaded.project_id),
        queries=counts.queried,
        thresholds=_class_reports(loaded, output),
        pooled_estimated_error=_num(th.pooled_estimated_error),
        pooled_error_bound=_num(th.pooled_error_bound),
        delta_used=_num(th.delta_used),
        epsilon=cfg.thresholds.epsilon,
        delta=cfg.thresholds.delta,
        bound=cfg.thresholds.bound,
        guarantee=cfg.thresholds.guarantee,
        rounds_total=cfg.loop.planned_rounds,
        delta_round=loaded.plan.delta,
        delta_schedule=cfg.thresholds.delta_schedule,
        seed=loaded.plan.seed,
        input_scale=loaded.input_scale,
        true_error=TrueError(
            round=wrong_round / known_round if known_round else None,
            round_known=known_round,
            round_wrong=wrong_round,
            total=wrong_total / known_total if known_total else None,
            total_known=known_total,
            total_wrong=wrong_total,
        ),
        auto_labeled_round_rows=n_round,
        reliability=_reliability(loaded, output),
        evaluation=_evaluation(loaded, output),
        label_review=_label_review(loaded, output),
        audit_sampled=counts.audited,
        validation_left=counts.validation_left,
        validation_queued=counts.topped_up,
        encoder=loaded.inputs.get("encoder"),  # issue 13 hook: the text encoder that made the features
        timings=timings,
    )


def _class_reports(loaded: LoadedRound, output: RoundOutput) -> list[ClassReport]:
    th = output.thresholds
    auto = np.asarray(output.auto_mask, dtype=bool)
    per_class_auto = np.bincount(np.asarray(output.pool_predicted)[auto], minlength=len(loaded.classes))
    return [
        ClassReport(
            class_name=name,
            index=k,
            threshold=_num(th.thresholds[k]),
            estimated_error=_num(th.estimated_error[k]),
            error_bound=_num(th.error_bound[k]),
            n_points=int(th.n_points[k]),
            auto_labeled=int(per_class_auto[k]),
        )
        for k, name in enumerate(loaded.classes)
    ]


def _evaluation(loaded: LoadedRound, output: RoundOutput) -> dict[str, Any] | None:
    """The classifier on the round's validation set (human labels it never trained on): accuracy, ECE
    (10 equal-width bins of the top softmax probability), NLL and, when humans gave distributions, the
    cross-entropy against them (:class:`tbal.evaluation.EvaluationReport`; OOD AUROC and FGSM need inputs
    the service does not have, so they stay out). Values that are not finite become null."""
    report = output.evaluation
    if report is None:
        return None
    values = {k: v for k, v in report.to_dict().items() if not k.startswith(("fgsm", "ood"))}
    return {
        "source": "validation",
        **{k: v if v is None or isinstance(v, int) else _num(v) for k, v in values.items()},
        "human_distributions": loaded.val_soft,
    }


def _label_review(loaded: LoadedRound, output: RoundOutput) -> LabelReview | None:
    """The human training labels that AUM says are probably wrong, lowest AUM first: every label with
    AUM < 0 (its class lost to another on average over training) and at least the lowest
    ``label_review_fraction`` of them (the review budget), at most :data:`LABEL_REVIEW_MAX`. Columns:
    item ids, AUM, the label trained on (argmax of the targets) and the model's predicted class."""
    from tbal.aum import likely_mislabeled

    aum, predicted = output.train_aum, output.train_predicted
    if aum is None or predicted is None:
        return None
    below_zero = likely_mislabeled(aum)
    budget = likely_mislabeled(aum, fraction=loaded.label_review_fraction)
    rows = below_zero if below_zero.size > budget.size else budget  # both prefixes of one stable ranking
    stored = rows[:LABEL_REVIEW_MAX]
    return LabelReview(
        signal="aum",
        fraction=loaded.label_review_fraction,
        training_labels=int(aum.size),
        below_zero=int(below_zero.size),
        flagged=int(rows.size),
        stored=int(stored.size),
        item_id=[int(i) for i in loaded.train_ids[stored]],
        aum=[round(float(a), 6) for a in aum[stored]],
        label=[int(c) for c in loaded.targets_train[stored].argmax(axis=1)],
        predicted=[int(c) for c in predicted[stored]],
    )


def _reliability(loaded: LoadedRound, output: RoundOutput, n_bins: int = 10) -> Reliability | None:
    """Reliability diagram of the confidence function on D_th (the human-labeled points that set the
    thresholds), for the dashboard: per equal-width bin, points, mean confidence and accuracy
    (:func:`tbal.metrics.reliability_diagram`), and the ECE, from the D_th scores the round computed.
    None when there is no D_th or the scores are not in [0, 1]."""
    from tbal.metrics import expected_calibration_error, reliability_diagram

    th = np.asarray(output.th_index, dtype=np.int64)
    if th.size == 0:
        return None
    scores = output.th_scores
    correct = np.asarray(output.th_predicted) == loaded.y_val[th]
    try:
        edges, accuracy, confidence, counts = reliability_diagram(scores, correct, n_bins)
    except TBALInputError:
        return None
    return Reliability(
        source="D_th",
        n=int(th.size),
        ece=_num(expected_calibration_error(scores, correct, n_bins)),
        edges=[float(e) for e in edges],
        accuracy=[_num(a) for a in accuracy],
        confidence=[_num(c) for c in confidence],
        counts=[int(c) for c in counts],
    )


def _num(value: Any) -> float | None:
    """A JSON-safe float: None for NaN and infinities."""
    x = float(value)
    return x if math.isfinite(x) else None


def reap_stale_rounds(session: Session, settings: Settings, *, project_id: int | None = None) -> list[int]:
    """Mark failed the running rounds (of ``project_id``, or all) whose heartbeat is older than
    ``settings.reap_after_s`` (3 × ``round_stale_after_s`` by default): their worker died (a whole worker
    killed leaves its message unacknowledged in the broker for the visibility timeout, hours), and a
    redelivered message, which takes a round over after ``round_stale_after_s``, had its chance.
    Commits; returns their ids.

    Called when a worker starts and before a round is started, so a dead round never blocks its project.
    Nothing of the dead round was written (results are written in one transaction at its end), and a
    late delivery of its message finds it final and does nothing.
    """
    now = utcnow()
    stale_before = now - timedelta(seconds=settings.reap_after_s)
    reason = (
        f"worker lost: no heartbeat for more than {settings.reap_after_s:g} s "
        "(marked failed; start a new round)"
    )
    ids = rounds_repo.fail_stale(session, stale_before, now, reason, project_id=project_id)
    session.commit()
    for round_id in ids:
        logger.warning("round %s: %s", round_id, reason)
    return ids


def _claim(round_id: int, factory: sessionmaker[Session], settings: Settings) -> str | None:
    with factory() as session:
        round_ = rounds_repo.lock(session, round_id)
        if round_ is None:
            logger.warning("round %s does not exist; nothing to do", round_id)
            return None
        now = utcnow()
        stale_before = now - timedelta(seconds=settings.round_stale_after_s)
        if round_.status in ("succeeded", "failed"):
            return None
        if (
            round_.status == "running"
            and round_.heartbeat_at is not None
            and round_.heartbeat_at >= stale_before
        ):
            logger.info("round %s is running elsewhere", round_id)
            return None
        token = uuid.uuid4().hex
        if not rounds_repo.claim(session, round_id, token, now, stale_before):
            session.rollback()
            return None
        session.commit()
        return token


def _fail(round_id: int, token: str, factory: sessionmaker[Session], reason: str) -> None:
    logger.warning("round %s failed: %s", round_id, reason)
    with factory() as session:
        rounds_repo.update_claimed(
            session,
            round_id,
            token,
            status="failed",
            error=reason[:4000],
            finished_at=utcnow(),
            claim_token=None,
        )
        session.commit()


def _give_back(round_id: int, token: str, factory: sessionmaker[Session]) -> None:
    """After a transient error: the round goes back to queued so that a retry can claim it at once."""
    try:
        with factory() as session:
            rounds_repo.update_claimed(
                session, round_id, token, status="queued", stage=None, progress=0.0, claim_token=None
            )
            session.commit()
    except Exception:  # the database is still away: the heartbeat goes stale and a retry takes it over
        logger.warning("round %s: could not give the claim back; it will be taken over when stale", round_id)


class _Progress:
    """Stage and progress of a running round: the library reports them (cheap, in memory); a thread
    writes them to the round row at most every ``progress_interval_s`` and refreshes the heartbeat."""

    def __init__(self, round_id: int, token: str, factory: sessionmaker[Session], settings: Settings) -> None:
        self._round_id = round_id
        self._token = token
        self._factory = factory
        self._interval = max(0.05, settings.progress_interval_s)
        self._heartbeat_every = max(self._interval, min(30.0, settings.round_stale_after_s / 4))
        self._limit = settings.round_time_limit_s
        self._started = time.monotonic()
        self._stage = "load"
        self._fraction = 0.0
        self._dirty = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"tbal-progress-{round_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def report(self, stage: str, fraction: float) -> None:
        """The library's progress callback; also enforces the time limit."""
        elapsed = time.monotonic() - self._started
        if elapsed > self._limit:
            raise RoundTimeLimit(f"round ran {elapsed:.0f} s, over the limit of {self._limit:.0f} s")
        self._stage, self._fraction, self._dirty = stage, min(max(float(fraction), 0.0), 1.0), True

    def overall(self) -> float:
        done = 0.0
        for stage, weight in STAGE_WEIGHTS.items():
            if stage == self._stage:
                return min(1.0, done + weight * self._fraction)
            done += weight
        return min(1.0, done)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _loop(self) -> None:
        last_write = 0.0
        while not self._stop.wait(self._interval):
            if self._dirty or time.monotonic() - last_write >= self._heartbeat_every:
                self._dirty = False
                self._flush()
                last_write = time.monotonic()

    def _flush(self) -> None:
        try:
            with self._factory() as session:
                rounds_repo.update_claimed(
                    session,
                    self._round_id,
                    self._token,
                    stage=self._stage,
                    progress=round(self.overall(), 4),
                    heartbeat_at=utcnow(),
                )
                session.commit()
        except Exception as exc:  # progress is best effort; the round goes on
            logger.warning("round %s: could not write progress: %s", self._round_id, exc)
