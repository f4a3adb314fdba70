"""Temperature scaling (Guo, Pleiss, Sun, Weinberger, "On Calibration of Modern Neural Networks",
ICML 2017)."""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize_scalar

from tbal.confidence._common import require_points
from tbal.confidence.base import ConfidenceFunction
from tbal.confidence.softmax import max_softmax
from tbal.predictions import Predictions

# T is searched in [1e-2, 1e2]: wide enough for any trained network; a fit at an end means the
# calibration labels are (nearly) separable by the logits (T → 0) or unrelated to them (T → ∞).
LOG_T_BOUNDS = (math.log(1e-2), math.log(1e2))


class TemperatureScaling(ConfidenceFunction):
    """Score = max_k softmax(z / T)_k, with T > 0 minimising the NLL on D_cal:

        T* = argmin_T  (1/n) Σ_i [ logsumexp(z_i / T) − z_{i, y_i} / T ].

    The NLL is convex in 1/T, hence unimodal in log T, and is minimised by bounded Brent search on
    log T ∈ [log 1e-2, log 1e2] (float64). The Colander paper's variant adds a bias to z / T; a bias
    shared by all classes does not change the softmax, so we leave it out. Dividing by T keeps the
    classifier's ŷ (argmax z = argmax z / T), so the score is the calibrated probability of ŷ.
    """

    name = "temperature"

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes)
        self.temperature = 1.0

    def _fit(self, cal: Predictions, y: np.ndarray, seed: int) -> None:
        require_points(self.name, len(cal), 1)
        self.temperature = fit_temperature(cal.logits, y)

    def _score(self, preds: Predictions) -> np.ndarray:
        return max_softmax(np.asarray(preds.logits, dtype=np.float64) / self.temperature)


def temperature_nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    """Mean NLL of softmax(z / T) at the labels y: (n, K), (n,) -> float."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    zmax = z.max(axis=1)
    lse = zmax + np.log(np.exp(z - zmax[:, None]).sum(axis=1))
    return float(np.mean(lse - z[np.arange(z.shape[0]), y]))


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """T minimising :func:`temperature_nll` over T ∈ [1e-2, 1e2] (bounded Brent on log T)."""
    result = minimize_scalar(
        lambda log_t: temperature_nll(logits, y, math.exp(log_t)),
        bounds=LOG_T_BOUNDS,
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(math.exp(result.x))
