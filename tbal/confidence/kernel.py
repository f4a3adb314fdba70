"""The model's own confidence when its logits are log-scores in (−∞, 0]: DUQ's max_c K_c."""

from __future__ import annotations

import numpy as np

from tbal.confidence.base import ConfidenceFunction
from tbal.errors import TBALInputError
from tbal.predictions import Predictions

LOG_SCORE_TOLERANCE = 1e-5
"""Largest accepted logit: log-scores are ≤ 0 up to rounding."""


class KernelConfidence(ConfidenceFunction):
    """Score = exp(max_k z_k) for a classifier whose logits are log kernel values, log K_k ≤ 0: DUQ's
    certainty max_c K_c (van Amersfoort et al., "Uncertainty Estimation Using a Single Deep Deterministic
    Neural Network", ICML 2020; :class:`tbal.uncertainty.DUQClassifier`). Unlike a softmax, it is small for
    inputs far from every class centroid. Fitting learns nothing; scoring raw logits (> 0) raises."""

    name = "kernel"
    learns_from_labels = False

    def _fit(self, cal: Predictions, y: np.ndarray, seed: int) -> None:
        return None

    def _score(self, preds: Predictions) -> np.ndarray:
        return kernel_score(preds.logits)


def kernel_score(logits: np.ndarray) -> np.ndarray:
    """(n, K) log-scores → (n,) float64 exp(max_k z_k) in [0, 1]."""
    z = np.asarray(logits, dtype=np.float64)
    if z.size and z.max() > LOG_SCORE_TOLERANCE:
        raise TBALInputError(
            f"kernel confidence expects log-scores ≤ 0 (DUQ's log K), got a logit of {z.max():.3g}; "
            "use the softmax confidence for other models"
        )
    return np.exp(np.minimum(z.max(axis=1), 0.0))
