"""Per-class threshold estimation and the error bounds.

CONTRACT (stub, to be implemented): keep these names and signatures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tbal.config import ThresholdConfig


@dataclass(frozen=True)
class ThresholdResult:
    """Per-class thresholds from D_th.

    thresholds: (K,) float64; +inf for a class that is not auto-labeled this round.
    estimated_error: (K,) empirical error among D_th points of predicted class k with score ≥ t[k]
        (nan where none).
    error_bound: (K,) the upper bound that certified t[k] (nan where not certified).
    n_points: (K,) int, D_th points of predicted class k with score ≥ t[k].
    pooled_estimated_error / pooled_error_bound: over all D_th points above their class's threshold
        (nan when nothing passes).
    delta_used: the δ each test was run at (after the splits across classes and rounds).
    """

    thresholds: np.ndarray
    estimated_error: np.ndarray
    error_bound: np.ndarray
    n_points: np.ndarray
    pooled_estimated_error: float
    pooled_error_bound: float
    delta_used: float


def estimate_thresholds(
    scores: np.ndarray,
    predicted: np.ndarray,
    correct: np.ndarray,
    num_classes: int,
    config: ThresholdConfig,
    *,
    delta_divisor: int = 1,
) -> ThresholdResult:
    """Thresholds from D_th: ``scores`` (n,), ``predicted`` (n,) ŷ, ``correct`` (n,) bool 1[y = ŷ].
    ``delta_divisor``: how many rounds δ is split over (1 = this round alone)."""
    raise NotImplementedError


def auto_label_mask(scores: np.ndarray, predicted: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(n,) bool: score ≥ thresholds[ŷ]."""
    raise NotImplementedError
