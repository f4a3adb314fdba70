"""Full Dirichlet calibration with ODIR regularisation (Kull, Perelló-Nieto, Kängsepp, Silva Filho,
Song, Flach, "Beyond temperature scaling: Obtaining well-calibrated multiclass probabilities with
Dirichlet calibration", NeurIPS 2019)."""

from __future__ import annotations

import numpy as np
import torch

from tbal.confidence._common import log_softmax, one_torch_thread, require_points
from tbal.confidence.base import ConfidenceFunction
from tbal.config import ConfigError
from tbal.predictions import Predictions


class DirichletCalibration(ConfidenceFunction):
    """Calibrated probabilities q(x) = softmax(W · log p(x) + b), W (K, K), b (K,), p = softmax(z).

    Fit on D_cal by minimising (float64, L-BFGS with strong-Wolfe line search, from W = I, b = 0,
    the identity map):

        (1/n) Σ_i −log q(x_i)[y_i]  +  λ · ( Σ_{j≠k} W_jk² / (K(K−1))  +  Σ_k b_k² / K ),

    the paper's ODIR regulariser (off-diagonal and intercept), with one λ = ``reg`` for both terms
    (the paper allows two). Large λ shrinks W towards a diagonal matrix and b towards 0.
    Score = q(x)[ŷ] with ŷ the classifier's prediction (which need not be argmax q).
    """

    name = "dirichlet"

    def __init__(self, num_classes: int, reg: float = 1e-2, max_iter: int = 500) -> None:
        super().__init__(num_classes)
        if isinstance(reg, bool) or not isinstance(reg, (int, float)) or not reg >= 0.0:
            raise ConfigError(f"dirichlet reg must be a number ≥ 0, got {reg!r}")
        if not isinstance(max_iter, int) or isinstance(max_iter, bool) or max_iter < 1:
            raise ConfigError(f"dirichlet max_iter must be a positive integer, got {max_iter!r}")
        self.reg = float(reg)
        self.max_iter = max_iter
        self.weight = np.eye(num_classes)  # W, (K, K)
        self.bias = np.zeros(num_classes)  # b, (K,)

    def _fit(self, cal: Predictions, y: np.ndarray, seed: int) -> None:
        require_points(self.name, len(cal), 1)
        k = self.num_classes
        log_p = torch.from_numpy(log_softmax(cal.logits))  # (n, K) float64
        target = torch.from_numpy(y)
        weight = torch.eye(k, dtype=torch.float64, requires_grad=True)
        bias = torch.zeros(k, dtype=torch.float64, requires_grad=True)
        off_diagonal = 1.0 - torch.eye(k, dtype=torch.float64)
        optimizer = torch.optim.LBFGS(
            [weight, bias],
            lr=1.0,
            max_iter=self.max_iter,
            tolerance_grad=1e-9,
            tolerance_change=1e-12,
            history_size=20,
            line_search_fn="strong_wolfe",
        )

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            logits = log_p @ weight.T + bias  # (n, K)
            penalty = (weight * off_diagonal).pow(2).sum() / (k * (k - 1)) + bias.pow(2).sum() / k
            loss = torch.nn.functional.cross_entropy(logits, target) + self.reg * penalty
            loss.backward()  # type: ignore[no-untyped-call]
            return loss

        with one_torch_thread():
            optimizer.step(closure)  # type: ignore[no-untyped-call]
        self.weight = weight.detach().numpy().copy()
        self.bias = bias.detach().numpy().copy()

    def calibrated_probs(self, preds: Predictions) -> np.ndarray:
        """(n, K) q(x) = softmax(W · log p(x) + b)."""
        logits = log_softmax(preds.logits) @ self.weight.T + self.bias
        return np.exp(log_softmax(logits))

    def _score(self, preds: Predictions) -> np.ndarray:
        q = self.calibrated_probs(preds)
        return q[np.arange(len(preds)), preds.predicted]
