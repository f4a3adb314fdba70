"""The TBAL loop: one round (:func:`run_round`, shared by the service) and the whole run over an
in-memory pool with an oracle (:func:`run_tbal`).

One round, as in Vishwakarma et al. (NeurIPS 2023, 2024): train a fresh classifier on all human training
labels; split the current validation set at random into D_cal (ν) and D_th; fit the confidence function on
D_cal; estimate per-class thresholds on D_th; auto-label the pool points whose score ≥ t[ŷ]; mark the
validation points inside the auto-labeled region for removal; choose the next queries among the pool
points that were not auto-labeled.

Why one module of ~720 lines: the round (:func:`run_round`) and the oracle loop (:func:`run_tbal`) share
the round's input and output types, the plan's bookkeeping and the dataset guarantee's counts; the
one-path test (tests/app/test_one_path.py) holds the service to exactly this contract, so it lives in
one place.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from tbal.confidence import ConfidenceFunction, make_confidence
from tbal.config import (
    COMPARABLE_SCORES,
    LABEL_FREE_SCORES,
    TBALConfig,
    TrainConfig,
    resolved_thresholds,
    targeted_count,
)
from tbal.data import Dataset
from tbal.errors import TBALInputError
from tbal.evaluation import EvaluationReport, evaluate_predictions
from tbal.models import Classifier, build_model, network_name, resolve_device
from tbal.plan import (
    RoundPlan,
    RunState,
    draw_initial_sets,
    draw_targeted,
    draw_top_up,
    may_auto_label,
    plan_round,
    stratum_cut,
)
from tbal.predictions import Predictions, predict
from tbal.query import MODEL_FREE_QUERIES, random_queries, select_queries
from tbal.thresholds import (
    DatasetContext,
    PoolContext,
    ThresholdResult,
    auto_label_mask,
    estimate_thresholds,
)
from tbal.training.aum import AUMRecorder
from tbal.training.self_training import pseudo_label_choice
from tbal.training.train import one_hot, train_classifier
from tbal.training.warm_start import continue_from, warm_start_applies
from tbal.uncertainty import train_uncertainty_model

ProgressCallback = Callable[[str, float], None]
"""Called with (stage, fraction of that stage done in [0, 1])."""

STAGES: tuple[str, ...] = ("train", "calibrate", "thresholds", "auto-label", "query")


@dataclass(frozen=True)
class RoundInput:
    """What one round needs, as arrays (the service builds these from database rows).

    X_train: (n_t, ...) prepared inputs of the human *training* labels; targets_train: (n_t, K) target
    distributions (one-hot rows for hard labels). X_val / y_val: the current validation set (n_v, ...),
    (n_v,) int. X_pool: (n_p, ...) the points still unlabeled (neither human- nor auto-labeled).
    plan: the round's plan (:func:`tbal.plan.plan_round`: seed, δ_k, query budget, validation floor).
    None: a round on its own (seed from :func:`run_round`, tested at the whole δ, ``n_queries`` queries).
    n_queries: the query budget of a round without a plan (ignored when ``plan`` is given).
    validation_pending: validation items queued for humans but not labeled yet (they count towards the
    validation floor: a top-up is never bought twice).
    human_val: (n_v, K) the humans' label distributions of the validation points (one-hot rows where a
    point has a hard label only), for the evaluation report's cross-entropy against the humans; None when
    the humans gave no distributions.
    record_aum: record each training label's area under the margin while the classifier trains
    (:mod:`tbal.training.aum`; one extra eval-mode pass over X_train per epoch, which leaves the training
    as it is).
    stratum: the stratum an earlier round fixed (:class:`Stratum`); the round then certifies and
    auto-labels inside it only. None: the whole pool.
    warm_start: the previous round's classifier, which the round continues with ``train.warm_start_epochs``
    > 0 where ``train.warm_start_rounds`` names it (:mod:`tbal.training.warm_start`); None: the round
    trains a fresh one.
    """

    X_train: np.ndarray
    targets_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_pool: np.ndarray
    num_classes: int
    n_queries: int = 0
    plan: RoundPlan | None = None
    validation_pending: int = 0
    human_val: np.ndarray | None = None
    record_aum: bool = False
    labeled_so_far: LabeledSoFar | None = None
    stratum: Stratum | None = None
    warm_start: Classifier | None = None


@dataclass(frozen=True)
class Stratum:
    """The stratum an earlier round fixed (:mod:`tbal.plan`, "The stratum"), over this round's rows.

    pool: (n_p,) bool, the pool points in it. validation: (n_v,) bool, the validation points in it.
    targeted: (n_v,) bool, the validation points drawn inside it (all of them in it): they go to D_th
    only, since they are a uniform sample of the stratum, not of the validation set's population.
    """

    pool: np.ndarray
    validation: np.ndarray
    targeted: np.ndarray


@dataclass(frozen=True)
class LabeledSoFar:
    """What the ``dataset`` guarantee counts besides this round: human labels (training and validation,
    taken as correct), earlier rounds' auto-labels and the bound on their mistakes
    (:class:`tbal.thresholds.DatasetContext`). None in RoundInput: the round's own training and
    validation labels, nothing auto-labeled before."""

    human_labels: int
    auto_labels: int = 0
    mistakes_bound: float = 0.0


@dataclass
class RoundOutput:
    """What one round decided. Index arrays refer to the rows of the RoundInput arrays."""

    model: Classifier
    confidence: ConfidenceFunction
    thresholds: ThresholdResult
    plan: RoundPlan  # the plan the round ran under (δ_k, seed, query budget)
    # (n_p,) ŷ and its confidence; None where the round read nothing of the pool; inside a stratum with
    # queries that read no score, only the stratum's points are scored: -1 and NaN elsewhere
    # (_pool_rows_read, :attr:`pool_scored`)
    pool_predicted: np.ndarray | None
    pool_scores: np.ndarray | None
    auto_mask: np.ndarray  # (n_p,) bool: auto-labeled this round
    val_removed: np.ndarray  # (n_v,) bool: validation points inside the auto-labeled region
    query_index: np.ndarray  # (q,) pool rows to send to humans next as training queries, best first
    top_up_index: np.ndarray  # (u,) pool rows to send to humans as validation top-ups (sorted)
    cal_index: np.ndarray  # validation rows used as D_cal
    th_index: np.ndarray  # validation rows used as D_th
    th_scores: np.ndarray  # (|D_th|,) confidence of D_th points (for the reliability diagram)
    th_predicted: np.ndarray  # (|D_th|,) ŷ of D_th points
    # validation rows the classifier also trained on (loop.train_outside_stratum; none read by a test)
    trained_validation_index: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    evaluation: EvaluationReport | None = None  # the classifier on the whole validation set (10-bin ECE)
    train_aum: np.ndarray | None = None  # (n_t,) AUM of each training label (RoundInput.record_aum)
    train_predicted: np.ndarray | None = None  # (n_t,) the trained classifier's class for each, with AUM
    timings: dict[str, float] = field(default_factory=dict)
    # set by the round that fixes the stratum (plan.targeted > 0), else None / empty:
    targeted_index: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))  # pool rows
    stratum_cut: float | None = None  # the classifier's probability of its class at and above which: in it
    pool_in_stratum: np.ndarray | None = None  # (n_p,) bool
    val_in_stratum: np.ndarray | None = None  # (n_v,) bool

    @property
    def pool_scored(self) -> np.ndarray:
        """(n_p,) bool: the pool points the round scored (:func:`_pool_rows_read`)."""
        if self.pool_predicted is None:
            return np.zeros(self.auto_mask.size, dtype=bool)
        return np.asarray(self.pool_predicted) >= 0

    @property
    def auto_predicted(self) -> np.ndarray:
        """(a,) ŷ of the pool points auto-labeled this round (none where the pool was not scored)."""
        return _auto_subset(self.pool_predicted, self.auto_mask, np.int64)

    @property
    def auto_scores(self) -> np.ndarray:
        """(a,) their confidence."""
        return _auto_subset(self.pool_scores, self.auto_mask, np.float64)


def _auto_subset(values: np.ndarray | None, auto_mask: np.ndarray, dtype: type) -> np.ndarray:
    return np.empty(0, dtype=dtype) if values is None else np.asarray(values)[auto_mask]


def run_round(
    inputs: RoundInput,
    config: TBALConfig,
    *,
    seed: int | None = None,
    progress: ProgressCallback | None = None,
) -> RoundOutput:
    """Run one TBAL round under ``inputs.plan`` (or, without a plan, as a round on its own seeded
    ``seed``); deterministic on CPU for a given seed and torch thread count (another thread count sums
    in another order, and a threshold can then move by one point)."""
    _check_round_input(inputs)
    plan = _round_plan(inputs, config, seed)
    seed = plan.seed
    report = progress or _no_progress
    rng = np.random.default_rng(seed)
    timings: dict[str, float] = {}
    device = resolve_device(config.train.device)

    with _timed(timings, "train"):
        may_label = may_auto_label(plan, config)
        self_train = may_label and _self_trains(config, network_name(config.model, inputs.X_train.shape[1:]))
        warm = inputs.warm_start if warm_start_applies(config, may_label, inputs.warm_start) else None
        outside = _validation_outside_stratum(inputs, config, may_label)
        trained = _train(
            inputs,
            config,
            seed,
            device,
            report,
            self_train=self_train,
            warm=warm,
            also_validation=outside,
            pool_rows=_pool_rows_read(inputs, config, plan, may_label),
        )
    model, pool_preds, pool_rows = trained.model, trained.pool_preds, trained.pool_rows
    pool_predicted = pool_preds.predicted if pool_preds is not None else None
    n_pool = len(inputs.X_pool)

    cert = _certify(inputs, config, plan, trained, rng, timings, report)

    with _timed(timings, "query"):
        report("query", 0.0)
        query_index, top_up_index = _queries(
            inputs, plan, config.query.strategy, pool_preds, cert.auto_mask, cert.val_removed, rng
        )
        fixed = _fix_stratum(plan, trained, cert.auto_mask, query_index, top_up_index)
        report("query", 1.0)

    return RoundOutput(
        model=model,
        confidence=cert.confidence,
        thresholds=cert.thresholds,
        plan=plan,
        pool_predicted=_on_pool(pool_predicted, pool_rows, n_pool, -1),
        pool_scores=_on_pool(cert.pool_scores, pool_rows, n_pool, np.nan),
        auto_mask=cert.auto_mask,
        val_removed=cert.val_removed,
        query_index=query_index,
        top_up_index=top_up_index,
        cal_index=cert.cal_index,
        th_index=cert.th_index,
        th_scores=cert.th_scores,
        th_predicted=cert.th_predicted,
        trained_validation_index=outside,
        evaluation=trained.evaluation,
        train_aum=trained.train_aum,
        train_predicted=trained.train_predicted,
        timings=timings,
        targeted_index=fixed.targeted_index,
        stratum_cut=fixed.cut,
        pool_in_stratum=fixed.pool,
        val_in_stratum=fixed.validation,
    )


def _pool_rows_read(inputs: RoundInput, config: TBALConfig, plan: RoundPlan, may_label: bool) -> np.ndarray:
    """The pool rows whose classifier outputs the round needs (sorted). All of them to fix the stratum or
    to rank the queries; inside a stratum with queries that read no score, the stratum's points only
    (nothing outside it can be auto-labeled or enters a test); all of them to auto-label (or self-train)
    without a stratum; none otherwise. A round that needs none (the text presets' rounds before the
    stratum: δ_k = 0 and random queries) trains its classifier for its report, the service's model and
    warm starts, and leaves the pool unscored: scoring the pool with fine-tuned MiniLM took most of such a
    round's time (BENCHMARKS.md, "Issue 11, thirtieth session"); the certifying round under a stratum of
    half the pool scores half of it ("thirty-first session")."""
    every = np.arange(len(inputs.X_pool), dtype=np.int64)
    if plan.targeted > 0 or config.query.strategy not in MODEL_FREE_QUERIES:
        return every
    if inputs.stratum is not None:
        return np.flatnonzero(inputs.stratum.pool).astype(np.int64)
    return every if may_label else np.empty(0, dtype=np.int64)


def _on_pool(values: np.ndarray | None, rows: np.ndarray, n_pool: int, missing: float) -> np.ndarray | None:
    """``values`` of the pool ``rows`` spread over the pool's n_pool points, ``missing`` elsewhere."""
    if values is None or rows.size == n_pool:
        return values
    spread = np.full(n_pool, missing, dtype=values.dtype)
    spread[rows] = values
    return spread


@dataclass
class _FixedStratum:
    """What the round that fixes the stratum decides (fields as in :class:`RoundOutput`)."""

    targeted_index: np.ndarray
    cut: float | None = None
    pool: np.ndarray | None = None
    validation: np.ndarray | None = None


def _fix_stratum(
    plan: RoundPlan,
    trained: _Trained,
    auto_mask: np.ndarray,
    query_index: np.ndarray,
    top_up_index: np.ndarray,
) -> _FixedStratum:
    """With ``plan.targeted`` > 0: the stratum's cut (the top ``plan.stratum_share`` of the pool left
    after the auto-labels and the queries) and the targeted validation points, drawn uniformly from its
    pool points that are neither queried nor topped up (:mod:`tbal.plan`, "The stratum").

    The ranking is the classifier's own probability of its class, never the confidence function's score:
    a confidence function fitted on D_cal (Colander, the calibrators) would make the stratum depend on
    validation labels that later rounds' D_th reuse inside it."""
    if plan.targeted == 0:
        return _FixedStratum(np.empty(0, dtype=np.int64))
    # a round that fixes the stratum scores its whole pool (_pool_rows_read)
    assert trained.pool_preds is not None and trained.pool_rows.size == auto_mask.size
    pool_rank = trained.pool_preds.probs.max(axis=1)
    left = ~auto_mask
    left[query_index] = False
    cut = stratum_cut(pool_rank[left], plan.stratum_share, plan.stratum_error)
    in_pool = pool_rank >= cut
    candidates = np.setdiff1d(np.flatnonzero(left & in_pool), top_up_index)
    in_validation = trained.val_preds.probs.max(axis=1) >= cut
    return _FixedStratum(draw_targeted(candidates, plan.targeted, plan), cut, in_pool, in_validation)


@dataclass
class _Certified:
    """The calibrate, thresholds and auto-label stages' results (fields as in :class:`RoundOutput`)."""

    confidence: ConfidenceFunction
    cal_index: np.ndarray
    th_index: np.ndarray
    th_scores: np.ndarray
    th_predicted: np.ndarray
    pool_scores: np.ndarray | None  # (|pool_rows|,) as _Trained.pool_preds
    thresholds: ThresholdResult
    auto_mask: np.ndarray
    val_removed: np.ndarray


def _certify(
    inputs: RoundInput,
    config: TBALConfig,
    plan: RoundPlan,
    trained: _Trained,
    rng: np.random.Generator,
    timings: dict[str, float],
    report: ProgressCallback,
) -> _Certified:
    """Fit the confidence function on D_cal, certify thresholds on D_th at the plan's δ_k, and mark the
    pool points auto-labeled and the validation points inside the auto-labeled region; with a stratum,
    D_th and the auto-labels are the stratum's points only."""
    val_preds, pool_preds, rows = trained.val_preds, trained.pool_preds, trained.pool_rows
    stratum = inputs.stratum
    with _timed(timings, "calibrate"):
        report("calibrate", 0.0)
        confidence = make_confidence(config.confidence, inputs.num_classes)
        targeted = stratum.targeted if stratum is not None else np.zeros(len(inputs.y_val), dtype=bool)
        cal_index, th_index = _validation_split(targeted, confidence, config, rng)
        confidence.fit(val_preds.subset(cal_index), inputs.y_val[cal_index], seed=plan.seed)

    with _timed(timings, "thresholds"):
        report("thresholds", 0.0)
        if stratum is not None:
            th_index = th_index[stratum.validation[th_index]]
        th_preds = val_preds.subset(th_index)
        th_scores = confidence.score(th_preds)
        pool_scores = confidence.score(pool_preds) if pool_preds is not None else None
        # the pool the certificate may label: its points in the stratum (every one scored); none where
        # the round did not score it (δ_k = 0: the test reads no pool)
        in_stratum = stratum.pool[rows] if stratum is not None else np.ones(rows.size, dtype=bool)
        rest_scores = pool_scores[in_stratum] if pool_scores is not None else np.empty(0)
        rest_predicted = (
            pool_preds.predicted[in_stratum] if pool_preds is not None else np.empty(0, dtype=np.int64)
        )
        thresholds = estimate_thresholds(
            th_scores,
            th_preds.predicted,
            th_preds.predicted == inputs.y_val[th_index],
            inputs.num_classes,
            resolved_thresholds(config),
            delta=plan.delta,
            dataset=_dataset_context(inputs, config, rest_scores, rest_predicted),
            pool=PoolContext(rest_scores, rest_predicted),
        )

    with _timed(timings, "auto-label"):
        report("auto-label", 0.0)
        auto_mask = np.zeros(len(inputs.X_pool), dtype=bool)
        if pool_preds is not None and pool_scores is not None:
            labeled = auto_label_mask(pool_scores, pool_preds.predicted, thresholds.thresholds)
            auto_mask[rows] = labeled & in_stratum
        val_removed = auto_label_mask(confidence.score(val_preds), val_preds.predicted, thresholds.thresholds)
        if stratum is not None:
            val_removed &= stratum.validation
    return _Certified(
        confidence,
        cal_index,
        th_index,
        th_scores,
        th_preds.predicted,
        pool_scores,
        thresholds,
        auto_mask,
        val_removed,
    )


def _validation_outside_stratum(inputs: RoundInput, config: TBALConfig, may_label: bool) -> np.ndarray:
    """The validation rows a round also trains on (``loop.train_outside_stratum``): in a round that may
    auto-label inside a stratum, those outside it, which no test of the round reads. Valid: the stratum
    was fixed by an earlier round's classifier, without labels, and the validation points inside it (the
    round's D_th) stay a uniform sample of it, apart from all the classifier is trained on. None for a
    confidence function fitted on labels, whose D_cal is drawn from the uniform validation points."""
    stratum = inputs.stratum
    if not (config.loop.train_outside_stratum and may_label and stratum is not None):
        return np.empty(0, dtype=np.int64)
    if config.confidence.name not in LABEL_FREE_SCORES:
        return np.empty(0, dtype=np.int64)
    return np.flatnonzero(~stratum.validation)


def _with_validation_rows(inputs: RoundInput, rows: np.ndarray, config: TBALConfig) -> RoundInput:
    """``inputs`` whose training labels are followed by the validation ``rows`` (none: ``inputs``)."""
    if rows.size == 0:
        return inputs
    return dataclasses.replace(
        inputs,
        X_train=np.concatenate([inputs.X_train, inputs.X_val[rows]]),
        targets_train=np.concatenate([inputs.targets_train, _validation_targets(inputs, rows, config)]),
    )


def _validation_targets(inputs: RoundInput, rows: np.ndarray, config: TBALConfig) -> np.ndarray:
    """Training targets of validation ``rows``, as the humans' training labels are given
    (:func:`training_targets`)."""
    human = inputs.human_val[rows] if inputs.human_val is not None else None
    targets = training_targets(inputs.y_val[rows], human, inputs.num_classes, config)
    return targets.astype(inputs.targets_train.dtype)


@dataclass
class _Trained:
    """The train stage's results: the classifier, its outputs on the validation set and the pool, its
    evaluation report and (with ``record_aum``) each training label's AUM and predicted class."""

    model: Classifier
    val_preds: Predictions
    pool_preds: Predictions | None  # on pool_rows; None where they are none
    pool_rows: np.ndarray  # the pool rows scored, sorted (_pool_rows_read)
    evaluation: EvaluationReport
    train_aum: np.ndarray | None
    train_predicted: np.ndarray | None


def _train(
    inputs: RoundInput,
    config: TBALConfig,
    seed: int,
    device: torch.device,
    report: ProgressCallback,
    *,
    self_train: bool = False,
    warm: Classifier | None = None,
    also_validation: np.ndarray | None = None,
    pool_rows: np.ndarray | None = None,
) -> _Trained:
    """Train a fresh classifier on the human training labels (and the validation rows ``also_validation``,
    :func:`_validation_outside_stratum`), or continue ``warm`` on them for ``train.warm_start_epochs``
    epochs (:mod:`tbal.training.warm_start`); with ``self_train``, a second one on its pseudo-labels
    beside them (:func:`_self_trained`); then predict the validation set and the ``pool_rows`` (None:
    the whole pool). The evaluation report and the AUM of the human training labels leave the validation rows
    trained on out."""
    report("train", 0.0)
    extra = also_validation if also_validation is not None else np.empty(0, dtype=np.int64)
    fit = _with_validation_rows(inputs, extra, config)
    model = build_model(config.model, tuple(inputs.X_train.shape[1:]), inputs.num_classes)
    recorder = _aum_recorder(inputs) if inputs.record_aum else None
    fraction = 0.5 if self_train else 1.0
    hooks = [recorder] if recorder is not None else []

    def progress(done: float) -> None:
        report("train", fraction * done)

    if warm is not None and continue_from(model, warm):
        continued = dataclasses.replace(config.train, epochs=config.train.warm_start_epochs)
        train_classifier(
            model,
            fit.X_train,
            fit.targets_train,
            continued,
            seed=seed,
            device=device,
            progress=progress,
            reinitialize=False,
            epoch_hooks=hooks,
        )
    else:
        # uncertainty-aware models need their own training (DUQ's loss, SNGP's covariance); plain ones go
        # straight to train_classifier
        train_uncertainty_model(
            model,
            fit.X_train,
            fit.targets_train,
            config.train,
            config.model,
            seed=seed,
            device=device,
            progress=progress,
            epoch_hooks=hooks,
        )
    # the human labels' AUM and predicted classes are the first classifier's, which saw no pseudo-label
    train_predicted = predict(model, inputs.X_train, device=device).predicted if recorder else None
    if self_train:
        model = _self_trained(model, fit, config, seed, device, lambda f: report("train", 0.5 + f / 2))
    val_preds = predict(model, inputs.X_val, device=device)
    unseen = np.ones(len(inputs.y_val), dtype=bool)
    unseen[extra] = False
    human_unseen = inputs.human_val[unseen] if inputs.human_val is not None else None
    rows = np.arange(len(inputs.X_pool), dtype=np.int64) if pool_rows is None else pool_rows
    return _Trained(
        model=model,
        val_preds=val_preds,
        pool_preds=_predict_rows(model, inputs.X_pool, rows, device),
        pool_rows=rows,
        # the classifier's report card (on the validation points it was not trained on): a few numpy sums
        # on val_preds, timed with the training
        evaluation=evaluate_predictions(val_preds.subset(unseen), inputs.y_val[unseen], human=human_unseen),
        train_aum=recorder.aum if recorder is not None else None,
        train_predicted=train_predicted,
    )


def _predict_rows(
    model: Classifier, X: np.ndarray, rows: np.ndarray, device: torch.device
) -> Predictions | None:
    """The classifier's outputs on ``X[rows]`` (no copy where the rows are all of X); None for no rows."""
    if rows.size == 0:
        return None
    return predict(model, X if rows.size == len(X) else X[rows], device=device)


def _self_trains(config: TBALConfig, network: str) -> bool:
    """Self-training costs a second training, so only the rounds that may auto-label pay it (the caller
    asks :func:`tbal.plan.may_auto_label` first). And only for confidence functions
    that read the classifier's scores as they are (softmax, temperature): a confidence function learned on
    D_cal (Colander, the binning calibrators) has to tell right from wrong on points whose pseudo-labels
    the second classifier was fitted to, mistakes included. Measured with Colander on the data-hard image
    case (tuning seeds 10-12): 42.5 / 42.1 / 0 % against 49.5 / 33.3 / 38.9 % without (BENCHMARKS.md,
    "Issue 11, eighth session")."""
    scores_as_they_are = config.confidence.name in COMPARABLE_SCORES
    share = config.train.for_network(network).pseudo_label_share
    return share > 0 and scores_as_they_are


def _self_trained(
    first: Classifier,
    inputs: RoundInput,
    config: TBALConfig,
    seed: int,
    device: torch.device,
    progress: Callable[[float], None],
) -> Classifier:
    """A fresh classifier trained on the human labels and ``first``'s pseudo-labels of the pool and the
    validation inputs together (:mod:`tbal.training.self_training`: treating both alike keeps D_th
    exchangeable with the pool)."""
    train = config.train
    rng = np.random.default_rng([seed, 1])
    # indices below n_pool are pool points, the rest validation points (the arrays are not joined: a
    # service pool can be large)
    n_pool = inputs.X_pool.shape[0]
    pool_preds, val_preds = (
        predict(first, inputs.X_pool, device=device),
        predict(first, inputs.X_val, device=device),
    )
    unlabeled_preds = Predictions(
        np.concatenate([pool_preds.logits, val_preds.logits]),
        np.concatenate([pool_preds.features, val_preds.features]),
    )
    share = train.for_network(first.network).pseudo_label_share
    index, labels = pseudo_label_choice(unlabeled_preds, share, train.pseudo_label_limit, rng)
    chosen = [
        inputs.X_train,
        inputs.X_pool[index[index < n_pool]],
        inputs.X_val[index[index >= n_pool] - n_pool],
    ]
    human, pseudo, second_training = _self_training_targets(
        inputs.targets_train, labels, unlabeled_preds, index, train
    )
    model = build_model(config.model, tuple(inputs.X_train.shape[1:]), inputs.num_classes)
    train_uncertainty_model(
        model,
        np.concatenate(chosen),
        np.concatenate([human, pseudo]),
        second_training,
        config.model,
        seed=seed,
        device=device,
        progress=progress,
    )
    return model


def _self_training_targets(
    targets_train: np.ndarray,
    labels: np.ndarray,
    unlabeled: Predictions,
    index: np.ndarray,
    train: TrainConfig,
) -> tuple[np.ndarray, np.ndarray, TrainConfig]:
    """The second classifier's target rows, human then pseudo, and its training: ``pseudo_label_epochs``
    epochs on the one-hot pseudo-``labels``, or (``pseudo_label_targets`` soft) on the first classifier's
    softmax rows of the chosen ``index`` of ``unlabeled``, fitted as distributions; the human rows then
    enter as the first training read them (one-hot of their top class under ``targets`` hard, else their
    distribution)."""
    second = dataclasses.replace(train, epochs=train.pseudo_label_epochs)
    dtype, num_classes = targets_train.dtype, targets_train.shape[1]
    if train.pseudo_label_targets == "hard":
        return targets_train, one_hot(labels, num_classes).astype(dtype), second
    human = targets_train
    if train.targets == "hard":
        human = one_hot(targets_train.argmax(axis=1), num_classes).astype(dtype)
    # only the chosen rows' softmax: the unlabeled set can be the whole pool
    return human, unlabeled.subset(index).probs.astype(dtype), dataclasses.replace(second, targets="soft")


def _dataset_context(
    inputs: RoundInput, config: TBALConfig, pool_scores: np.ndarray, pool_predicted: np.ndarray
) -> DatasetContext | None:
    if config.thresholds.guarantee != "dataset":
        return None
    so_far = inputs.labeled_so_far or LabeledSoFar(int(inputs.X_train.shape[0] + inputs.X_val.shape[0]))
    return DatasetContext(
        pool_scores=pool_scores,
        pool_predicted=pool_predicted,
        human_labels=so_far.human_labels,
        auto_labels=so_far.auto_labels,
        mistakes_bound=so_far.mistakes_bound,
    )


def _round_plan(inputs: RoundInput, config: TBALConfig, seed: int | None) -> RoundPlan:
    if inputs.plan is not None:
        if seed is not None and seed != inputs.plan.seed:
            raise TBALInputError(f"expected no seed or the plan's seed {inputs.plan.seed}, got {seed}")
        return inputs.plan
    if seed is None:
        raise TBALInputError("a round without a plan needs a seed")
    delta = 0.0 if config.thresholds.bound == "paper" else config.thresholds.delta
    return RoundPlan(round_index=0, seed=seed, delta=delta, query_budget=inputs.n_queries)


def _queries(
    inputs: RoundInput,
    plan: RoundPlan,
    strategy: str,
    pool_preds: Predictions | None,
    auto_mask: np.ndarray,
    val_removed: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Training queries (pool rows, best first) and validation top-ups (pool rows, sorted): the plan's
    budget split once the validation points left after the removals are known (:mod:`tbal.plan`).
    ``pool_preds``: the whole pool's, for a strategy that reads them (the others get None or a part of
    it, :func:`_pool_rows_read`)."""
    candidates = np.flatnonzero(~auto_mask)
    left = int(val_removed.size - val_removed.sum()) + inputs.validation_pending
    split = plan.split_queries(left, int(candidates.size))
    query_index = np.empty(0, dtype=np.int64)
    if split.training > 0:
        if strategy in MODEL_FREE_QUERIES:
            picked = random_queries(int(candidates.size), split.training, rng)
        else:
            assert pool_preds is not None and len(pool_preds) == auto_mask.size
            picked = select_queries(strategy, pool_preds.probs[candidates], split.training, rng)
        query_index = candidates[picked].astype(np.int64)
    rest = np.setdiff1d(candidates, query_index)
    return query_index, draw_top_up(rest, split.top_up, plan)


def _aum_recorder(inputs: RoundInput) -> AUMRecorder:
    """Margins against each training point's label argmax_k targets[i, k] (its hard label; for a soft
    label the humans' majority), as :func:`tbal.training.aum.compute_aum` takes them."""
    return AUMRecorder(
        torch.from_numpy(np.ascontiguousarray(inputs.X_train, dtype=np.float32)),
        torch.from_numpy(inputs.targets_train.argmax(axis=1).astype(np.int64)),
    )


def _validation_split(
    targeted: np.ndarray, confidence: ConfidenceFunction, config: TBALConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """D_cal and D_th: a random split of the uniformly drawn rows (ν·n of them to D_cal; the
    ``targeted`` rows, drawn inside a stratum, all go to D_th), except for a confidence function that
    learns nothing from labels, whose thresholds then use every validation point (a larger D_th certifies
    more: a Clopper–Pearson certificate needs n ≥ ln δ_k / ln(1 − ε) points inside the auto-labeled
    region)."""
    if not confidence.learns_from_labels:
        return np.empty(0, dtype=np.int64), np.arange(targeted.size, dtype=np.int64)
    uniform = np.flatnonzero(~targeted)
    share = config.loop.calibration_fraction
    if uniform.size < targeted.size:
        # ν of the whole set, all from the uniform rows: the confidence function fits as many points as
        # it would without a stratum (ν of the uniform rows alone would leave it a handful)
        share = min(1.0, share * targeted.size / max(uniform.size, 1))
    cal, th = split_validation(uniform.size, share, rng)
    return uniform[cal], np.sort(np.concatenate([uniform[th], np.flatnonzero(targeted)]))


def split_validation(
    n: int, calibration_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random split of n validation rows into D_cal (ν·n rows) and D_th (the rest)."""
    order = rng.permutation(n)
    n_cal = round(calibration_fraction * n)
    return np.sort(order[:n_cal]), np.sort(order[n_cal:])


def score_points(
    model: Classifier,
    confidence: ConfidenceFunction,
    thresholds: np.ndarray,
    X: np.ndarray,
    *,
    device: str = "auto",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predicted class (n,), confidence (n,) and whether each point clears its class's threshold (n,);
    ``device`` as ``train.device`` says it (``auto``: CUDA when present)."""
    preds: Predictions = predict(model, X, device=resolve_device(device))
    scores = confidence.score(preds)
    predicted = preds.predicted
    return predicted, scores, auto_label_mask(scores, predicted, thresholds)


def _check_round_input(inputs: RoundInput) -> None:
    k = inputs.num_classes
    if inputs.targets_train.shape != (inputs.X_train.shape[0], k):
        raise TBALInputError(
            f"expected targets_train of shape ({inputs.X_train.shape[0]}, {k}), "
            f"got {inputs.targets_train.shape}"
        )
    if inputs.X_train.shape[0] == 0:
        raise TBALInputError("a round needs at least one human training label, got none")
    if inputs.y_val.shape != (inputs.X_val.shape[0],):
        raise TBALInputError(f"expected y_val of shape ({inputs.X_val.shape[0]},), got {inputs.y_val.shape}")
    if inputs.X_val.shape[0] < 2:
        raise TBALInputError(f"a round needs at least 2 validation labels, got {inputs.X_val.shape[0]}")
    for name, arr in (("X_val", inputs.X_val), ("X_pool", inputs.X_pool)):
        if arr.shape[1:] != inputs.X_train.shape[1:]:
            raise TBALInputError(
                f"expected {name} rows of shape {inputs.X_train.shape[1:]}, got {arr.shape[1:]}"
            )
    if inputs.n_queries < 0:
        raise TBALInputError(f"n_queries must be ≥ 0, got {inputs.n_queries}")
    if inputs.human_val is not None and inputs.human_val.shape != (inputs.X_val.shape[0], k):
        raise TBALInputError(
            f"expected human_val of shape ({inputs.X_val.shape[0]}, {k}), got {inputs.human_val.shape}"
        )


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start


def _no_progress(stage: str, fraction: float) -> None:
    return None


@dataclass
class RoundRecord:
    """What one round of :func:`run_tbal` did (JSON-ready via :meth:`to_dict`)."""

    round: int
    human_training_labels: int  # labels this round's classifier was trained on (seed included)
    # validation labels it also trained on (loop.train_outside_stratum: those outside the stratum)
    validation_labels_trained: int
    human_validation_labels: int  # N_v drawn at the start, plus top-ups before this round
    validation_added: int  # validation top-ups this round drew from the pool for the next (validation_floor)
    humans_used: int  # training + validation labels paid for so far
    auto_labeled_round: int
    auto_labeled_total: int
    coverage: float  # auto-labeled so far / pool size
    pool_remaining: int  # pool points neither human- nor auto-labeled after this round
    validation_remaining: int  # validation points left after removing those in the auto-labeled region
    queried: int  # points sent to humans for the next round
    thresholds: list[float | None]  # per class; None = class not auto-labeled (+inf)
    estimated_error: list[float | None]
    error_bound: list[float | None]
    threshold_points: list[int]
    pooled_estimated_error: float | None
    pooled_error_bound: float | None
    delta_used: float | None  # δ of each test after the splits over classes / families; None: paper rule
    delta_round: float  # δ_k, this round's share of δ (tbal.plan); 0 for the paper rule
    true_error_round: float | None  # None when nothing was auto-labeled
    true_error_total: float | None
    classifier_accuracy_pool: float | None  # accuracy on the pool points still unlabeled before this round
    # how many of them it counts: all, or a uniform sample of ACCURACY_SAMPLE where the round scored a part
    # of its pool or none of it (tbal.loop._pool_rows_read)
    classifier_accuracy_points: int
    timings: dict[str, float]

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass
class RunResult:
    """A whole run: every round's record and the final auto-labeling outcome."""

    seed: int
    pool_size: int
    rounds: list[RoundRecord]
    auto_labeled_index: np.ndarray  # data rows auto-labeled, in order
    auto_labels: np.ndarray  # their labels
    wall_time_s: float
    queried_rows: list[np.ndarray] = field(default_factory=list)  # per round: data rows sent as queries
    top_up_rows: list[np.ndarray] = field(default_factory=list)  # per round: data rows of top-ups

    @property
    def coverage(self) -> float:
        return self.rounds[-1].coverage if self.rounds else 0.0

    @property
    def true_error(self) -> float | None:
        return self.rounds[-1].true_error_total if self.rounds else None

    def to_dict(self) -> dict[str, object]:
        return {
            "seed": self.seed,
            "pool_size": self.pool_size,
            "coverage": self.coverage,
            "true_error": self.true_error,
            "auto_labeled": int(self.auto_labels.size),
            "wall_time_s": self.wall_time_s,
            "rounds": [r.to_dict() for r in self.rounds],
        }


RoundCallback = Callable[[RoundRecord], None]


def run_tbal(
    dataset: Dataset,
    config: TBALConfig,
    *,
    seed: int,
    on_round: RoundCallback | None = None,
    progress: ProgressCallback | None = None,
) -> RunResult:
    """Run the whole TBAL loop on an in-memory data set, simulating humans with ``dataset.y``.

    The validation set (N_v points) is drawn at random and kept out of the pool, as in the papers (where it
    comes from a separate split); the seed training set is drawn at random from the pool. Rounds follow
    :func:`run_round` until the human training labels reach the budget N_t (seed included), the pool is
    empty, fewer than 2 validation points are left, or ``max_rounds`` is reached. With
    ``loop.validation_floor`` > 0, a round may first top the validation set up from the pool
    (:func:`_validation_top_up`), paid from N_t. Coverage is auto-labeled / pool size (human-labeled
    pool points count in the size, as in the papers; the validation points a stratum draws later do not,
    as N_v's others); true error is measured against ``dataset.y``.
    """
    started = time.perf_counter()
    rows = _working_rows(len(dataset), config.loop.pool_size, seed)
    _check_budget(len(rows), config)
    sets = _HumanSets.draw(rows, len(dataset), config, seed)
    pool_size = _pool_size(rows, sets, config)
    run = _RunTotals()
    records: list[RoundRecord] = []
    queried_rows: list[np.ndarray] = []
    top_up_rows: list[np.ndarray] = []
    for round_index in range(config.loop.planned_rounds):
        record, queried, top_up = _simulated_round(
            dataset, config, sets, run, round_index, seed=seed, pool_size=pool_size, progress=progress
        )
        records.append(record)
        queried_rows.append(queried)
        top_up_rows.append(top_up)
        if on_round is not None:
            on_round(record)
        # no label bought this round means the budget is spent (or nothing is left to query)
        bought = queried.size + top_up.size + run.targeted_this_round
        if bought == 0 or not sets.pool.any() or sets.validation.size < 2:
            break

    return RunResult(
        seed,
        pool_size,
        records,
        run.index(),
        run.labels(),
        time.perf_counter() - started,
        queried_rows=queried_rows,
        top_up_rows=top_up_rows,
    )


@dataclass
class _HumanSets:
    """Where each row of a simulated run stands: ``pool`` (bool over the data set: neither human- nor
    auto-labeled, nor queued), the validation rows and the training rows (sorted); once a round fixed
    the stratum, ``stratum`` and ``targeted`` (bool over the data set: in it; drawn inside it)."""

    pool: np.ndarray
    validation: np.ndarray
    train: np.ndarray
    stratum: np.ndarray | None = None
    targeted: np.ndarray | None = None

    @classmethod
    def draw(cls, rows: np.ndarray, n_rows: int, config: TBALConfig, seed: int) -> _HumanSets:
        """The initial validation and seed sets, drawn as the round plan says; the rest is the pool."""
        validation, train = draw_initial_sets(rows, config, seed)
        pool = np.zeros(n_rows, dtype=bool)
        pool[rows] = True
        pool[validation] = False
        pool[train] = False
        return cls(pool, validation, train)

    def round_stratum(self, pool_rows: np.ndarray) -> Stratum | None:
        """The stratum over a round's rows (its pool rows, then the validation rows), if one is fixed."""
        if self.stratum is None or self.targeted is None:
            return None
        return Stratum(
            pool=self.stratum[pool_rows],
            validation=self.stratum[self.validation],
            targeted=self.targeted[self.validation],
        )

    def fix_stratum(self, out: RoundOutput, pool_rows: np.ndarray, validation: np.ndarray) -> np.ndarray:
        """Record the stratum ``out`` fixed over the round's ``pool_rows`` and ``validation`` rows;
        the targeted rows it drew (they join the validation set with the round's other new rows)."""
        if out.pool_in_stratum is None or out.val_in_stratum is None:
            return np.empty(0, dtype=np.int64)
        self.stratum = np.zeros(self.pool.size, dtype=bool)
        self.stratum[pool_rows[out.pool_in_stratum]] = True
        self.stratum[validation[out.val_in_stratum]] = True
        targeted = pool_rows[out.targeted_index]
        self.targeted = np.zeros(self.pool.size, dtype=bool)
        self.targeted[targeted] = True
        return targeted


def _simulated_round(
    dataset: Dataset,
    config: TBALConfig,
    sets: _HumanSets,
    run: _RunTotals,
    round_index: int,
    *,
    seed: int,
    pool_size: int,
    progress: ProgressCallback | None,
) -> tuple[RoundRecord, np.ndarray, np.ndarray]:
    """One round of :func:`run_tbal` under its plan, with the simulated humans answering at once: updates
    ``sets`` and ``run``; (the round's record, the rows queried for training, the validation top-up rows)."""
    state = RunState(
        round_index,
        int(sets.train.size),
        run.topped_up,
        run.delta_spent,
        stratum_drawn=sets.stratum is not None,
    )
    plan = plan_round(state, config, run_seed=seed)
    pool_rows = np.flatnonzero(sets.pool)
    inputs = _oracle_round_input(dataset, config, sets, pool_rows, plan, run)
    out = run_round(inputs, config, progress=progress)
    newly = pool_rows[out.auto_mask]
    queried = pool_rows[out.query_index]
    top_up = pool_rows[out.top_up_index]
    targeted = sets.fix_stratum(out, pool_rows, sets.validation)
    accuracy = _pool_accuracy(out, inputs.X_pool, dataset.y[pool_rows], config, seed=plan.seed)
    sets.pool[newly] = sets.pool[queried] = sets.pool[top_up] = sets.pool[targeted] = False
    n_validation = run.validation_labels(config)
    run.add(newly, out.auto_predicted, out, int(top_up.size), int(targeted.size))
    n_train = int(sets.train.size)
    sets.validation = np.sort(np.concatenate([sets.validation[~out.val_removed], top_up, targeted]))
    sets.train = np.sort(np.concatenate([sets.train, queried]))
    counts = (
        n_train,
        n_validation,
        int(sets.pool.sum()),
        int(sets.validation.size),
        int(queried.size),
        int(top_up.size + targeted.size),
    )
    record = _round_record(round_index, out, dataset, newly, run, pool_size, *accuracy, *counts)
    return record, queried, np.sort(np.concatenate([top_up, targeted]))


def _pool_size(rows: np.ndarray, sets: _HumanSets, config: TBALConfig) -> int:
    """The coverage's denominator: the working rows less the N_v validation points, those the stratum
    draws later included (they leave the pool all the same), so that runs with and without it compare."""
    return int(rows.size - sets.validation.size - targeted_count(config))


def _oracle_round_input(
    dataset: Dataset,
    config: TBALConfig,
    sets: _HumanSets,
    pool_rows: np.ndarray,
    plan: RoundPlan,
    run: _RunTotals,
) -> RoundInput:
    """The round's arrays from the data set's rows, the simulated humans' labels included."""
    train, validation = sets.train, sets.validation
    return RoundInput(
        X_train=dataset.X[train],
        targets_train=human_targets(dataset, train, config),
        X_val=dataset.X[validation],
        y_val=dataset.y[validation],
        X_pool=dataset.X[pool_rows],
        num_classes=dataset.num_classes,
        plan=plan,
        labeled_so_far=LabeledSoFar(
            human_labels=int(train.size) + run.validation_labels(config),
            auto_labels=int(sum(i.size for i in run.auto_index)),
            mistakes_bound=run.mistakes_bound,
        ),
        stratum=sets.round_stratum(pool_rows),
        warm_start=run.classifier,
    )


@dataclass
class _RunTotals:
    """What a run has auto-labeled and spent so far."""

    auto_index: list[np.ndarray] = field(default_factory=list)
    auto_labels: list[np.ndarray] = field(default_factory=list)
    delta_spent: float = 0.0
    topped_up: int = 0
    targeted: int = 0  # validation labels drawn inside the stratum (out of N_v)
    targeted_this_round: int = 0
    mistakes_bound: float = 0.0  # Σ certified mistake bounds of the auto-labels (dataset guarantee)
    classifier: Classifier | None = None  # the last round's, which the next round may continue

    def validation_labels(self, config: TBALConfig) -> int:
        """Validation labels the humans gave so far: N_v less what the stratum has not drawn yet, and
        the top-ups."""
        return config.loop.validation_size - targeted_count(config) + self.targeted + self.topped_up

    def add(
        self, index: np.ndarray, labels: np.ndarray, out: RoundOutput, topped_up: int, targeted: int = 0
    ) -> None:
        self.auto_index.append(index)
        self.auto_labels.append(labels)
        self.delta_spent += out.plan.delta
        self.topped_up += topped_up
        self.targeted += targeted
        self.targeted_this_round = targeted
        self.classifier = out.model
        if index.size and np.isfinite(out.thresholds.auto_mistakes_bound):
            self.mistakes_bound += out.thresholds.auto_mistakes_bound

    def index(self) -> np.ndarray:
        return np.concatenate(self.auto_index) if self.auto_index else np.empty(0, dtype=np.int64)

    def labels(self) -> np.ndarray:
        return np.concatenate(self.auto_labels) if self.auto_labels else np.empty(0, dtype=np.int64)


def human_targets(dataset: Dataset, rows: np.ndarray, config: TBALConfig) -> np.ndarray:
    """Target distributions the simulated humans give for ``rows`` (:func:`training_targets`)."""
    soft = dataset.soft[rows] if dataset.soft is not None else None
    return training_targets(dataset.y[rows], soft, dataset.num_classes, config)


def training_targets(
    labels: np.ndarray, distributions: np.ndarray | None, num_classes: int, config: TBALConfig
) -> np.ndarray:
    """Training targets of labeled points: the humans' label ``distributions`` for soft / sampled targets
    when they gave them, else one-hot rows of ``labels``."""
    if config.train.targets != "hard" and distributions is not None:
        return distributions.astype(np.float32)
    return one_hot(labels, num_classes)


def _working_rows(n: int, pool_size: int | None, seed: int) -> np.ndarray:
    """The rows a run works on: all of them, or ``pool_size`` drawn uniformly (a stream of its own)."""
    if pool_size is None or pool_size >= n:
        return np.arange(n)
    rng = np.random.default_rng([seed, _WORKING_ROWS_STREAM])
    return np.sort(rng.choice(n, size=pool_size, replace=False))


_WORKING_ROWS_STREAM = 0x9001


def _check_budget(n: int, config: TBALConfig) -> None:
    loop = config.loop
    needed = loop.validation_size + loop.seed_size
    if needed >= n:
        raise TBALInputError(
            f"budget larger than the data: validation_size ({loop.validation_size}) + seed_size "
            f"({loop.seed_size}) = {needed} needs more than the {n} points available"
        )


def _round_record(
    round_index: int,
    out: RoundOutput,
    dataset: Dataset,
    newly: np.ndarray,
    run: _RunTotals,
    pool_size: int,
    accuracy: float | None,
    accuracy_points: int,
    n_train: int,
    n_validation: int,
    pool_remaining: int,
    validation_remaining: int,
    queried: int,
    validation_added: int,
) -> RoundRecord:
    all_index = run.index()
    all_labels = run.labels()
    th = out.thresholds
    return RoundRecord(
        round=round_index,
        human_training_labels=n_train,
        validation_labels_trained=int(out.trained_validation_index.size),
        human_validation_labels=n_validation,
        validation_added=validation_added,
        humans_used=n_train + n_validation,
        auto_labeled_round=int(newly.size),
        auto_labeled_total=int(all_index.size),
        coverage=all_index.size / pool_size if pool_size else 0.0,
        pool_remaining=pool_remaining,
        validation_remaining=validation_remaining,
        queried=queried,
        thresholds=_finite_or_none(th.thresholds),
        estimated_error=_finite_or_none(th.estimated_error),
        error_bound=_finite_or_none(th.error_bound),
        threshold_points=[int(n) for n in th.n_points],
        pooled_estimated_error=_float_or_none(th.pooled_estimated_error),
        pooled_error_bound=_float_or_none(th.pooled_error_bound),
        delta_used=_float_or_none(th.delta_used),
        delta_round=out.plan.delta,
        true_error_round=_error_or_none(out.auto_predicted, dataset.y[newly]),
        true_error_total=_error_or_none(all_labels, dataset.y[all_index]),
        classifier_accuracy_pool=accuracy,
        classifier_accuracy_points=accuracy_points,
        timings={k: round(v, 4) for k, v in out.timings.items()},
    )


def _pool_accuracy(
    out: RoundOutput, X_pool: np.ndarray, truth: np.ndarray, config: TBALConfig, *, seed: int
) -> tuple[float | None, int]:
    """The round's classifier on its pool against the data's labels, and on how many points: all of them,
    or, where the round scored a part of its pool or none of it (:func:`_pool_rows_read`), a uniform
    sample of ``ACCURACY_SAMPLE`` (a stream of its own, so the run's draws are those of a round that
    scored it): a diagnostic of the simulation, which the round itself does not need."""
    if not truth.size:
        return None, 0
    if out.pool_scored.all():
        return float(np.mean(out.pool_predicted == truth)), int(truth.size)
    rows = np.arange(truth.size)
    if truth.size > ACCURACY_SAMPLE:
        rng = np.random.default_rng([seed, _ACCURACY_SAMPLE_STREAM])
        rows = np.sort(rng.choice(truth.size, size=ACCURACY_SAMPLE, replace=False))
    predicted = predict(out.model, X_pool[rows], device=resolve_device(config.train.device)).predicted
    return float(np.mean(predicted == truth[rows])), int(rows.size)


ACCURACY_SAMPLE = 1_000
"""How many pool points :func:`run_tbal` scores for a round's accuracy where the round did not score its
whole pool (standard error ≤ 1.6 points)."""
_ACCURACY_SAMPLE_STREAM = 0x9002


def _error_or_none(labels: np.ndarray, truth: np.ndarray) -> float | None:
    return float(np.mean(labels != truth)) if labels.size else None


def _float_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _finite_or_none(values: np.ndarray) -> list[float | None]:
    return [_float_or_none(float(v)) for v in values]
