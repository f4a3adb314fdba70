"""Colander (Vishwakarma, Chen, Tay, Namburi, Sala, Vinayak, "Pearls from Pebbles: Improved Confidence
Functions for Auto-labeling", NeurIPS 2024): a confidence function trained for auto-labeling."""

from __future__ import annotations

import math

import numpy as np
import torch

from tbal.confidence._common import require_points
from tbal.confidence.base import ConfidenceFunction
from tbal.config import ColanderConfig, ConfigError
from tbal.errors import DataError
from tbal.training import Predictions

_SCORE_CHUNK = 8192  # points scored at once (bounds the (chunk, hidden) float64 buffer)


class Colander(ConfidenceFunction):
    """A small network g trained on D_cal to maximise a surrogate of the auto-labeling coverage under a
    penalty on the auto-labeling error.

    Input z = [logits, penultimate features] (d = K + d_feat), standardised with the D_cal mean and
    standard deviation of each column (our addition, not in the paper: logits and features live on
    very different scales, and without it Adam's steps and the tanh units see mostly the logits).

        g(x) = softmax(W₂ · tanh(W₁ · z + b₁) + b₂),   W₁: d → m·d (m = ``hidden_multiplier``), W₂: m·d → K.

    With learnable per-class thresholds t (K,), σ(α, u) = 1 / (1 + e^(−αu)), the classifier's
    predictions ŷ and the labels y of a batch B:

        s_i = σ(α, g(x_i)[ŷ_i] − t[ŷ_i]),   P̃ = (1/|B|) Σ_i s_i,   Ẽ = Σ_i 1[y_i ≠ ŷ_i] s_i / Σ_i s_i,
        loss = −P̃ + λ · Ẽ.

    g and t are trained jointly with Adam (``lr``; ``weight_decay`` on g's parameters only — decaying
    t would pull the thresholds to 0, and t is a threshold, not a weight), mini-batches of
    ``batch_size`` from a seeded shuffle, ``epochs`` epochs, CosineAnnealingLR(T_max=``cosine_t_max``)
    stepped once an epoch. Initial weights come from a seeded torch.Generator (uniform ±1/√fan_in, as
    torch's Linear), t starts at 1/K. The final model is kept: the reference code kept the snapshot
    with the best coverage on D_th, which uses D_th twice (here D_th only sets the thresholds).

    Score of a point = g(x)[ŷ], ŷ = the classifier's prediction (never the label). The learned t is kept
    in ``train_thresholds`` for inspection only; the loop re-estimates thresholds on D_th.
    """

    name = "colander"

    def __init__(
        self, num_classes: int, config: ColanderConfig | None = None, *, standardize: bool = True
    ) -> None:
        super().__init__(num_classes)
        config = ColanderConfig() if config is None else config
        if not isinstance(config, ColanderConfig):
            raise ConfigError(f"colander expects a ColanderConfig, got {type(config).__name__}")
        self.config = config
        self.standardize = bool(standardize)
        self.mean = np.zeros(0)  # (d,) D_cal column means of z (0 when not standardising)
        self.scale = np.ones(0)  # (d,) D_cal column standard deviations of z (1 for constant columns)
        self.w1 = np.zeros((0, 0))  # (d, m·d)
        self.b1 = np.zeros(0)  # (m·d,)
        self.w2 = np.zeros((0, num_classes))  # (m·d, K)
        self.b2 = np.zeros(num_classes)  # (K,)
        self.train_thresholds = np.zeros(num_classes)  # learned t, (K,): not used for scoring
        self.train_loss = np.zeros(0)  # (epochs,) loss of each epoch's last batch

    def _fit(self, cal: Predictions, y: np.ndarray, seed: int) -> None:
        require_points(self.name, len(cal), 2)
        z = _inputs(cal)
        if not np.isfinite(z).all():
            raise DataError("colander: logits and features of D_cal must be finite")
        if self.standardize:
            self.mean = z.mean(axis=0)
            std = z.std(axis=0)
            self.scale = np.where(std > 1e-8, std, 1.0)
        else:
            self.mean = np.zeros(z.shape[1])
            self.scale = np.ones(z.shape[1])
        predicted = cal.predicted
        params, thresholds, losses = _train(
            torch.from_numpy(((z - self.mean) / self.scale).astype(np.float32)),
            torch.from_numpy(predicted),
            torch.from_numpy((predicted != y).astype(np.float32)),
            self.num_classes,
            self.config,
            seed,
        )
        self.w1, self.b1, self.w2, self.b2 = (p.astype(np.float64) for p in params)
        self.train_thresholds = thresholds.astype(np.float64)
        self.train_loss = losses.astype(np.float64)

    def _score(self, preds: Predictions) -> np.ndarray:
        expected = self.w1.shape[0] - self.num_classes
        if preds.features.shape[1] != expected:
            raise DataError(
                f"colander: expected features of shape (n, {expected}) as in D_cal, "
                f"got {preds.features.shape}"
            )
        out = np.empty(len(preds))
        predicted = preds.predicted
        for start in range(0, len(preds), _SCORE_CHUNK):
            stop = start + _SCORE_CHUNK
            out[start:stop] = self._g_at(
                preds.subset(np.arange(start, min(stop, len(preds)))), predicted[start:stop]
            )
        return out

    def _g_at(self, preds: Predictions, predicted: np.ndarray) -> np.ndarray:
        z = (_inputs(preds) - self.mean) / self.scale  # (n, d)
        out = np.tanh(z @ self.w1 + self.b1) @ self.w2 + self.b2  # (n, K)
        out -= out.max(axis=1, keepdims=True)
        log_g = out - np.log(np.exp(out).sum(axis=1, keepdims=True))
        return np.exp(log_g[np.arange(len(predicted)), predicted])


def _inputs(preds: Predictions) -> np.ndarray:
    """z = [logits, features], (n, K + d_feat) float64."""
    return np.concatenate(
        [np.asarray(preds.logits, dtype=np.float64), np.asarray(preds.features, dtype=np.float64)], axis=1
    )


def _uniform(shape: tuple[int, ...], bound: float, generator: torch.Generator) -> torch.Tensor:
    return ((torch.rand(shape, generator=generator) * 2.0 - 1.0) * bound).requires_grad_(True)


def _train(
    z: torch.Tensor,
    predicted: torch.Tensor,
    wrong: torch.Tensor,
    num_classes: int,
    config: ColanderConfig,
    seed: int,
) -> tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
    """Train g and t on full tensors: z (n, d) float32, predicted (n,) int64, wrong (n,) float32 1[y ≠ ŷ].
    Returns ((W₁, b₁, W₂, b₂), t, per-epoch last-batch loss)."""
    n, d = z.shape
    hidden = config.hidden_multiplier * d
    generator = torch.Generator().manual_seed(seed)
    w1 = _uniform((d, hidden), 1.0 / math.sqrt(d), generator)
    b1 = _uniform((hidden,), 1.0 / math.sqrt(d), generator)
    w2 = _uniform((hidden, num_classes), 1.0 / math.sqrt(hidden), generator)
    b2 = _uniform((num_classes,), 1.0 / math.sqrt(hidden), generator)
    t = torch.full((num_classes,), 1.0 / num_classes, requires_grad=True)
    optimizer = torch.optim.Adam(
        [
            {"params": [w1, b1, w2, b2], "weight_decay": config.weight_decay},
            {"params": [t], "weight_decay": 0.0},
        ],
        lr=config.lr,
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.cosine_t_max)
    alpha, lam = config.alpha, config.lam
    losses = []
    for _ in range(config.epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, config.batch_size):
            index = order[start : start + config.batch_size]
            zb, yb = z[index], predicted[index]  # (b, d), (b,)
            out = torch.addmm(b2, torch.tanh(torch.addmm(b1, zb, w1)), w2)  # (b, K)
            g_pred = torch.log_softmax(out, dim=1).gather(1, yb[:, None]).squeeze(1).exp()  # (b,) g(x)[ŷ]
            s = torch.sigmoid(alpha * (g_pred - t[yb]))  # (b,)
            coverage = s.mean()
            error = (wrong[index] * s).sum() / s.sum().clamp_min(1e-12)
            loss = -coverage + lam * error
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
        scheduler.step()
        losses.append(loss.detach())
    params = tuple(p.detach().numpy().copy() for p in (w1, b1, w2, b2))
    return params, t.detach().numpy().copy(), torch.stack(losses).numpy()
