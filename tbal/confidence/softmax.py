"""Maximum softmax probability: the classifier's own confidence, no calibration."""

from __future__ import annotations

import numpy as np

from tbal.confidence.base import ConfidenceFunction
from tbal.predictions import Predictions


class SoftmaxConfidence(ConfidenceFunction):
    """Score = max_k softmax(z)_k = softmax(z)[ŷ] (Hendrycks & Gimpel, "A Baseline for Detecting
    Misclassified and Out-of-Distribution Examples in Neural Networks", ICLR 2017); the confidence
    function of the TBAL paper (Vishwakarma et al., NeurIPS 2023). Fitting learns nothing."""

    name = "softmax"
    learns_from_labels = False

    def _fit(self, cal: Predictions, y: np.ndarray, seed: int) -> None:
        return None

    def _score(self, preds: Predictions) -> np.ndarray:
        return max_softmax(preds.logits)


def max_softmax(logits: np.ndarray) -> np.ndarray:
    """(n, K) logits -> (n,) float64 max softmax probability = 1 / Σ_k exp(z_k − max z)."""
    z = np.asarray(logits, dtype=np.float64)
    return 1.0 / np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1)
