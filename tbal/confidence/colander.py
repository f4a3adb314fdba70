"""Colander (Vishwakarma, Chen, Tay, Namburi, Sala, Vinayak, "Pearls from Pebbles: Improved Confidence
Functions for Auto-labeling", NeurIPS 2024): a confidence function trained for auto-labeling."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from tbal.confidence._common import one_torch_thread, require_points
from tbal.confidence.base import ConfidenceFunction
from tbal.config import ColanderConfig, ConfigError
from tbal.errors import DataError
from tbal.predictions import Predictions

_SCORE_CHUNK = 8192  # points scored at once (bounds the (chunk, hidden) float64 buffer)


class Colander(ConfidenceFunction):
    """A small network g trained on D_cal to maximise a surrogate of the auto-labeling coverage under a
    penalty on the auto-labeling error.

    Input z = [logits, penultimate features] (d = K + d_feat), as in the paper; with ``standardize``
    each column of z is standardised with its D_cal mean and standard deviation. The network, with
    s = ``logit_skip`` (0 in the paper, 1 by default; all settings come from
    :class:`~tbal.config.ColanderConfig`, whose defaults are the residual network below and whose
    ``paper_network()`` is the paper's):

        g(x) = softmax(s · logits + W₂ · tanh(W₁ · z + b₁) + b₂),   W₁: d → m·d (m = ``hidden_multiplier``),
        W₂: m·d → K.

    With learnable per-class thresholds t (K,), σ(α, u) = 1 / (1 + e^(−αu)), the classifier's
    predictions ŷ and the labels y of a batch B:

        s_i = σ(α, g(x_i)[ŷ_i] − t[ŷ_i]),   P̃ = (1/|B|) Σ_i s_i,   Ẽ = Σ_i 1[y_i ≠ ŷ_i] s_i / Σ_i s_i,
        loss = −P̃ + λ · Ẽ.

    g and t are trained jointly with Adam (``lr``; ``weight_decay`` on g's parameters only: t is a
    threshold, and decaying it would pull it to 0), mini-batches of ``batch_size`` from a seeded
    shuffle, ``epochs`` epochs, CosineAnnealingLR(T_max=``cosine_t_max``) stepped once an epoch.
    Initial weights come from a seeded torch.Generator (uniform ±1/√fan_in, as torch's Linear); with
    s > 0, W₂ and b₂ start at 0, so that training starts from g = softmax(s · logits); t starts at 1/K.

    Why the residual (``logit_skip`` = 1, our addition): D_cal is small (150–250 points with 10–30
    mistakes on MNIST) and the paper's g, which must rebuild the classifier's ranking from z, overfits
    it. Measured on MNIST round 0 (LeNet-5 on 200 labels, D_cal 150, 6 seeds, bench/tune_mnist.py),
    within-class AUROC of correctness on the pool: softmax 0.931; the paper's g (λ 10, α 1, lr 0.01,
    wd 0.01, 500 epochs) 0.690; residual + standardised z + wd 0.1, 100 epochs 0.933 (round-0
    coverage 80.5% at 1.9% error vs softmax 80.0% at 1.9%). Weight decay pulls the correction to 0, i.e.
    towards the classifier's own softmax; wd 0.01 gave 0.917, λ = 100 gave 0.90.
    On SST-2 MiniLM embeddings (text-paper classifier on 2,000 random labels, D_cal 800, tuning seeds
    10–13, bench/sst2_colander_tune.py) the paper's g ranks at chance (AUROC 0.500: tied scores) and the
    residual network exactly as softmax (0.76–0.78): on text it is softmax, at the price of half the
    validation set.

    Snapshots: the reference code kept, every 10 epochs, the snapshot with the best coverage on D_th —
    D_th then both picks the model and certifies its thresholds. Here D_th is never seen. With
    ``selection_fraction`` = 0 (default) the final model is kept; with f > 0, a seeded random share f
    of D_cal is held out of training and, every ``snapshot_every`` epochs, the snapshot with the lowest
    loss (−P̃ + λ·Ẽ on the whole held-out part) is kept. (On MNIST, f = 0.3 did not raise the AUROC:
    with D_cal this small, the held-out share is missed more than the selection helps.)

    Score of a point = g(x)[ŷ], ŷ = the classifier's prediction (never the label). The learned t is kept
    in ``train_thresholds`` for inspection only; the loop re-estimates thresholds on D_th.
    Training runs torch on one thread (see ``_common.one_torch_thread``) on full tensors (batches are
    index slices, no DataLoader): 250 points, d = 94, 500 epochs (2,000 Adam steps) take about 1.8 s
    of CPU, 150 points and 100 epochs about 0.35 s (measured on a shared 2-core machine; the first fit in
    a process adds about 1 s of torch.optim's lazy imports). The constructor's keyword arguments, when
    given, replace the config's ``standardize``, ``selection_fraction`` and ``snapshot_every``.
    """

    name = "colander"

    def __init__(
        self,
        num_classes: int,
        config: ColanderConfig | None = None,
        *,
        standardize: bool | None = None,
        selection_fraction: float | None = None,
        snapshot_every: int | None = None,
    ) -> None:
        super().__init__(num_classes)
        config = ColanderConfig() if config is None else config
        if not isinstance(config, ColanderConfig):
            raise ConfigError(f"colander expects a ColanderConfig, got {type(config).__name__}")
        standardize = config.standardize if standardize is None else standardize
        selection_fraction = config.selection_fraction if selection_fraction is None else selection_fraction
        snapshot_every = config.snapshot_every if snapshot_every is None else snapshot_every
        if isinstance(selection_fraction, bool) or not 0.0 <= selection_fraction < 1.0:
            raise ConfigError(f"colander selection_fraction must be in [0, 1), got {selection_fraction!r}")
        if isinstance(snapshot_every, bool) or not isinstance(snapshot_every, int) or snapshot_every < 1:
            raise ConfigError(f"colander snapshot_every must be a positive integer, got {snapshot_every!r}")
        self.config = config
        self.standardize = bool(standardize)
        self.selection_fraction = float(selection_fraction)
        self.snapshot_every = snapshot_every
        self.mean = np.zeros(0)  # (d,) D_cal column means of z (0 when not standardising)
        self.scale = np.ones(0)  # (d,) D_cal column standard deviations of z (1 for constant columns)
        self.w1 = np.zeros((0, 0))  # (d, m·d)
        self.b1 = np.zeros(0)  # (m·d,)
        self.w2 = np.zeros((0, num_classes))  # (m·d, K)
        self.b2 = np.zeros(num_classes)  # (K,)
        self.train_thresholds = np.zeros(num_classes)  # learned t, (K,): not used for scoring
        self.train_loss = np.zeros(0)  # (epochs,) loss of each epoch's last batch
        self.selected_epoch = 0  # epochs trained by the kept snapshot

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
        data = _Batch(
            torch.from_numpy(((z - self.mean) / self.scale).astype(np.float32)),
            torch.from_numpy(self.config.logit_skip * np.asarray(cal.logits, dtype=np.float32)),
            torch.from_numpy(cal.predicted),
            torch.from_numpy((cal.predicted != y).astype(np.float32)),
        )
        n_select = round(self.selection_fraction * len(cal))
        selection = None
        if 0 < n_select < len(cal):
            order = torch.from_numpy(np.random.default_rng(seed).permutation(len(cal)))
            selection, data = data.take(order[:n_select]), data.take(order[n_select:])
        with one_torch_thread():
            result = _train(data, selection, self.num_classes, self.config, seed, self.snapshot_every)
        self.w1, self.b1, self.w2, self.b2 = (p.astype(np.float64) for p in result.params)
        self.train_thresholds = result.thresholds.astype(np.float64)
        self.train_loss = result.losses.astype(np.float64)
        self.selected_epoch = result.epoch

    def _score(self, preds: Predictions) -> np.ndarray:
        expected = self.w1.shape[0] - self.num_classes
        if preds.features.shape[1] != expected:
            raise DataError(
                f"colander: expected features of shape (n, {expected}) as in D_cal, "
                f"got {preds.features.shape}"
            )
        predicted = preds.predicted
        out = np.empty(len(preds))
        for start in range(0, len(preds), _SCORE_CHUNK):
            part = np.arange(start, min(start + _SCORE_CHUNK, len(preds)))
            out[part] = self._g_at(preds.subset(part), predicted[part])
        return out

    def _g_at(self, preds: Predictions, predicted: np.ndarray) -> np.ndarray:
        """g(x)[ŷ] in float64 for (n,) points."""
        z = (_inputs(preds) - self.mean) / self.scale  # (n, d)
        skip = self.config.logit_skip * np.asarray(preds.logits, dtype=np.float64)  # (n, K)
        out = skip + np.tanh(z @ self.w1 + self.b1) @ self.w2 + self.b2  # (n, K)
        out -= out.max(axis=1, keepdims=True)
        log_g = out - np.log(np.exp(out).sum(axis=1, keepdims=True))
        return np.exp(log_g[np.arange(len(predicted)), predicted])


@dataclass(frozen=True)
class _Batch:
    z: torch.Tensor  # (n, d) float32, standardised inputs
    skip: torch.Tensor  # (n, K) float32, logit_skip · logits
    predicted: torch.Tensor  # (n,) int64, ŷ
    wrong: torch.Tensor  # (n,) float32, 1[y ≠ ŷ]

    def take(self, index: torch.Tensor) -> _Batch:
        return _Batch(self.z[index], self.skip[index], self.predicted[index], self.wrong[index])


@dataclass(frozen=True)
class _TrainResult:
    params: tuple[np.ndarray, ...]  # W₁ (d, h), b₁ (h,), W₂ (h, K), b₂ (K,)
    thresholds: np.ndarray  # t (K,)
    losses: np.ndarray  # (epochs,) loss of each epoch's last batch
    epoch: int  # epochs trained by the kept snapshot


def _inputs(preds: Predictions) -> np.ndarray:
    """z = [logits, features], (n, K + d_feat) float64."""
    return np.concatenate(
        [np.asarray(preds.logits, dtype=np.float64), np.asarray(preds.features, dtype=np.float64)], axis=1
    )


def _uniform(shape: tuple[int, ...], bound: float, generator: torch.Generator) -> torch.Tensor:
    return ((torch.rand(shape, generator=generator) * 2.0 - 1.0) * bound).requires_grad_(True)


def _loss(
    params: list[torch.Tensor], t: torch.Tensor, batch: _Batch, alpha: float, lam: float
) -> torch.Tensor:
    """−P̃ + λ·Ẽ on a batch (see :class:`Colander`)."""
    w1, b1, w2, b2 = params
    out = batch.skip + torch.addmm(b2, torch.tanh(torch.addmm(b1, batch.z, w1)), w2)  # (b, K)
    log_g = torch.log_softmax(out, dim=1)
    g_pred = log_g.gather(1, batch.predicted[:, None]).squeeze(1).exp()  # (b,) g(x)[ŷ]
    s = torch.sigmoid(alpha * (g_pred - t[batch.predicted]))  # (b,)
    coverage = s.mean()
    error = (batch.wrong * s).sum() / s.sum().clamp_min(1e-12)
    return -coverage + lam * error


def _train(
    data: _Batch,
    selection: _Batch | None,
    num_classes: int,
    config: ColanderConfig,
    seed: int,
    snapshot_every: int,
) -> _TrainResult:
    """Train g and t on full tensors (no DataLoader: batches are index slices of ``data``); with a
    ``selection`` set, keep the snapshot of lowest selection loss among every ``snapshot_every``-th
    epoch and the last one."""
    n, d = data.z.shape
    hidden = config.hidden_multiplier * d
    generator = torch.Generator().manual_seed(seed)
    head = 0.0 if config.logit_skip > 0 else 1.0 / math.sqrt(hidden)
    params = [
        _uniform((d, hidden), 1.0 / math.sqrt(d), generator),  # W₁
        _uniform((hidden,), 1.0 / math.sqrt(d), generator),  # b₁
        _uniform((hidden, num_classes), head, generator),  # W₂
        _uniform((num_classes,), head, generator),  # b₂
    ]
    t = torch.full((num_classes,), 1.0 / num_classes, requires_grad=True)
    optimizer = torch.optim.Adam(
        [{"params": params, "weight_decay": config.weight_decay}, {"params": [t], "weight_decay": 0.0}],
        lr=config.lr,
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.cosine_t_max)
    alpha, lam = config.alpha, config.lam

    def snapshot() -> tuple[list[torch.Tensor], torch.Tensor]:
        return [p.detach().clone() for p in params], t.detach().clone()

    best, best_epoch, best_loss = snapshot(), 0, math.inf
    losses = []
    for epoch in range(1, config.epochs + 1):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, config.batch_size):
            loss = _loss(params, t, data.take(order[start : start + config.batch_size]), alpha, lam)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
        scheduler.step()
        losses.append(loss.detach())
        if selection is not None and (epoch % snapshot_every == 0 or epoch == config.epochs):
            with torch.no_grad():
                selection_loss = float(_loss(params, t, selection, alpha, lam))
            if selection_loss < best_loss:
                best, best_epoch, best_loss = snapshot(), epoch, selection_loss
    if selection is None:
        best, best_epoch = snapshot(), config.epochs
    kept_params, kept_t = best
    return _TrainResult(
        params=tuple(p.numpy().copy() for p in kept_params),
        thresholds=kept_t.numpy().copy(),
        losses=torch.stack(losses).numpy(),
        epoch=best_epoch,
    )
