"""The TBAL loop: one round (:func:`run_round`, shared by the service) and the whole run over an
in-memory pool with an oracle (:func:`run_tbal`).

One round, as in Vishwakarma et al. (NeurIPS 2023, 2024): train a fresh classifier on all human training
labels; split the current validation set at random into D_cal (ν) and D_th; fit the confidence function on
D_cal; estimate per-class thresholds on D_th; auto-label the pool points whose score ≥ t[ŷ]; mark the
validation points inside the auto-labeled region for removal; choose the next queries among the pool
points that were not auto-labeled.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from tbal.confidence import ConfidenceFunction, make_confidence
from tbal.config import TBALConfig
from tbal.errors import TBALInputError
from tbal.models import Classifier, build_model, resolve_device
from tbal.query import select_queries
from tbal.thresholds import ThresholdResult, auto_label_mask, estimate_thresholds
from tbal.training import Predictions, predict, train_classifier

ProgressCallback = Callable[[str, float], None]
"""Called with (stage, fraction of that stage done in [0, 1])."""

STAGES: tuple[str, ...] = ("train", "calibrate", "thresholds", "auto-label", "query")


@dataclass(frozen=True)
class RoundInput:
    """What one round needs, as arrays (the service builds these from database rows).

    X_train: (n_t, ...) prepared inputs of the human *training* labels; targets_train: (n_t, K) target
    distributions (one-hot rows for hard labels). X_val / y_val: the current validation set (n_v, ...),
    (n_v,) int. X_pool: (n_p, ...) the points still unlabeled (neither human- nor auto-labeled).
    n_queries: how many pool points to query for the next round (0 when the budget is spent).
    rounds_total: how many rounds δ is split over (1 = this round alone).
    """

    X_train: np.ndarray
    targets_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_pool: np.ndarray
    num_classes: int
    n_queries: int
    round_index: int = 0
    rounds_total: int = 1


@dataclass
class RoundOutput:
    """What one round decided. Index arrays refer to the rows of the RoundInput arrays."""

    model: Classifier
    confidence: ConfidenceFunction
    thresholds: ThresholdResult
    pool_predicted: np.ndarray  # (n_p,) ŷ
    pool_scores: np.ndarray  # (n_p,) confidence of ŷ
    auto_mask: np.ndarray  # (n_p,) bool: auto-labeled this round
    val_removed: np.ndarray  # (n_v,) bool: validation points inside the auto-labeled region
    query_index: np.ndarray  # (q,) pool rows to send to humans next
    cal_index: np.ndarray  # validation rows used as D_cal
    th_index: np.ndarray  # validation rows used as D_th
    timings: dict[str, float] = field(default_factory=dict)


def run_round(
    inputs: RoundInput,
    config: TBALConfig,
    *,
    seed: int,
    progress: ProgressCallback | None = None,
) -> RoundOutput:
    """Run one TBAL round; deterministic on CPU for a given seed."""
    _check_round_input(inputs)
    report = progress or _no_progress
    rng = np.random.default_rng(seed)
    timings: dict[str, float] = {}
    device = resolve_device(config.train.device)

    with _timed(timings, "train"):
        report("train", 0.0)
        model = build_model(config.model, tuple(inputs.X_train.shape[1:]), inputs.num_classes)
        train_classifier(
            model,
            inputs.X_train,
            inputs.targets_train,
            config.train,
            seed=seed,
            device=device,
            progress=lambda f: report("train", f),
        )
        val_preds = predict(model, inputs.X_val, device=device)
        pool_preds = predict(model, inputs.X_pool, device=device)

    with _timed(timings, "calibrate"):
        report("calibrate", 0.0)
        cal_index, th_index = split_validation(len(inputs.y_val), config.loop.calibration_fraction, rng)
        confidence = make_confidence(config.confidence, inputs.num_classes)
        confidence.fit(val_preds.subset(cal_index), inputs.y_val[cal_index], seed=seed)

    with _timed(timings, "thresholds"):
        report("thresholds", 0.0)
        th_preds = val_preds.subset(th_index)
        thresholds = estimate_thresholds(
            confidence.score(th_preds),
            th_preds.predicted,
            th_preds.predicted == inputs.y_val[th_index],
            inputs.num_classes,
            config.thresholds,
            delta_divisor=inputs.rounds_total if config.thresholds.split_delta_over_rounds else 1,
        )

    with _timed(timings, "auto-label"):
        report("auto-label", 0.0)
        pool_scores = confidence.score(pool_preds)
        pool_predicted = pool_preds.predicted
        auto_mask = auto_label_mask(pool_scores, pool_predicted, thresholds.thresholds)
        val_removed = auto_label_mask(confidence.score(val_preds), val_preds.predicted, thresholds.thresholds)

    with _timed(timings, "query"):
        report("query", 0.0)
        candidates = np.flatnonzero(~auto_mask)
        query_index = np.empty(0, dtype=np.int64)
        if inputs.n_queries > 0 and candidates.size > 0:
            picked = select_queries(
                config.query.strategy, pool_preds.probs[candidates], inputs.n_queries, rng
            )
            query_index = candidates[picked].astype(np.int64)
        report("query", 1.0)

    return RoundOutput(
        model=model,
        confidence=confidence,
        thresholds=thresholds,
        pool_predicted=pool_predicted,
        pool_scores=pool_scores,
        auto_mask=auto_mask,
        val_removed=val_removed,
        query_index=query_index,
        cal_index=cal_index,
        th_index=th_index,
        timings=timings,
    )


def split_validation(n: int, calibration_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random split of n validation rows into D_cal (ν·n rows) and D_th (the rest)."""
    order = rng.permutation(n)
    n_cal = int(round(calibration_fraction * n))
    return np.sort(order[:n_cal]), np.sort(order[n_cal:])


def score_points(
    model: Classifier,
    confidence: ConfidenceFunction,
    thresholds: np.ndarray,
    X: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predicted class (n,), confidence (n,) and whether each point clears its class's threshold (n,)."""
    preds: Predictions = predict(model, X, device=resolve_device("auto"))
    scores = confidence.score(preds)
    predicted = preds.predicted
    return predicted, scores, auto_label_mask(scores, predicted, thresholds)


def _check_round_input(inputs: RoundInput) -> None:
    k = inputs.num_classes
    if inputs.targets_train.shape != (inputs.X_train.shape[0], k):
        raise TBALInputError(
            f"expected targets_train of shape ({inputs.X_train.shape[0]}, {k}), got {inputs.targets_train.shape}"
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


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start


def _no_progress(stage: str, fraction: float) -> None:
    return None
