"""Area under the margin (AUM) as a label-quality signal, and the saliency pairing of AUM-guided mixup.

AUM (Pleiss, Zhang, Elenberg, Weinberger, "Identifying Mislabeled Data using the Area Under the Margin
Ranking", NeurIPS 2020): the margin of training point i at epoch e is
M_e(i) = z_e(i)[y_i] − max_{k ≠ y_i} z_e(i)[k] (logits z, y_i the assigned label), and
AUM(i) = (1/E) Σ_e M_e(i). A correctly labeled point is soon learned by generalisation and its margin
grows; a mislabeled one is learned only by memorisation, late, and its margin stays low or negative, so a
low AUM marks a human label that is probably wrong. Here the margins are taken after each epoch with the
model in eval mode (no dropout, no augmentation; an MC Dropout model's network without its T passes:
:meth:`tbal.models.Classifier.deterministic_logits`), a pass that leaves the training itself unchanged.

Saliency-guided mixup (Park & Caragea, "On the Calibration of Pre-trained Language Models using Mixup
Guided by Area Under the Margin and Saliency", ACL 2022): the training points are split at the median
AUM into easy (≥ median) and hard ones; each point's saliency is the gradient magnitude of its loss with
respect to the logits, |∂L/∂z| = |softmax(z) − t| for cross-entropy against t; each point is mixed with the
point of the other half whose saliency is most similar (cosine) and with the one most dissimilar, and the
loss is β·L + γ·L′ + δ·L″ (see :class:`tbal.training.objectives.SaliencyMixup`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from tbal.config import TrainConfig
from tbal.errors import TBALInputError
from tbal.networks import Classifier
from tbal.training.margins import eval_logits, margins
from tbal.training.train import train_classifier

__all__ = ["AUMRecorder", "compute_aum", "likely_mislabeled"]


class AUMRecorder:
    """An epoch hook for :func:`tbal.training.train.train_classifier` that records every training point's
    margin after each epoch. x: (n, ...) the training inputs as passed to training, classes: (n,) the
    assigned labels (argmax of the targets)."""

    def __init__(self, x: torch.Tensor, classes: torch.Tensor) -> None:
        self.x = x
        self.classes = classes
        self.history: list[np.ndarray] = []  # one (n,) float64 array of margins per epoch

    def __call__(self, model: Classifier, epoch: int) -> None:
        device = next(model.parameters()).device
        if self.x.device != device:  # moved once, on the first call
            self.x, self.classes = self.x.to(device), self.classes.to(device)
        logits = eval_logits(model, self.x, deterministic=True)
        self.history.append(margins(logits, self.classes).double().cpu().numpy())

    @property
    def aum(self) -> np.ndarray:
        """(n,) mean margin over the recorded epochs."""
        if not self.history:
            raise TBALInputError("no epoch recorded yet: AUM needs at least one finished epoch")
        return np.mean(np.stack(self.history), axis=0)


def compute_aum(
    model: Classifier,
    X: np.ndarray,
    targets: np.ndarray,
    config: TrainConfig,
    *,
    seed: int,
    device: torch.device | None = None,
    progress: Callable[[float], None] | None = None,
) -> np.ndarray:
    """Train ``model`` in place exactly as :func:`tbal.training.train.train_classifier` does (same arguments,
    same weights for the same seed) and return each training point's AUM (n,) float64 against the label
    argmax_k targets[i, k]. Points with a low (negative) AUM are the likely label errors
    (:func:`likely_mislabeled`)."""

    X = np.asarray(X)
    targets = np.asarray(targets)
    if targets.ndim != 2 or targets.shape[0] != X.shape[0]:
        raise TBALInputError(f"expected targets of shape ({X.shape[0]}, K), got {targets.shape}")
    recorder = AUMRecorder(
        torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)),
        torch.from_numpy(targets.argmax(axis=1).astype(np.int64)),
    )
    train_classifier(
        model, X, targets, config, seed=seed, device=device, progress=progress, epoch_hooks=[recorder]
    )
    return recorder.aum


def likely_mislabeled(
    aum: np.ndarray, *, threshold: float = 0.0, fraction: float | None = None
) -> np.ndarray:
    """Rows to review, lowest AUM first, (m,) int64: those with AUM below ``threshold``, or, when
    ``fraction`` is given, the ⌈fraction·n⌉ rows with the lowest AUM (ties broken by row order).

    AUM < 0 (the default) marks the points whose assigned class lost, on average over training, to another
    class: precise but conservative, since a network that memorises a wrong label late still ends with a
    small positive mean margin (MNIST, 10 % flipped labels, bench/aum_label_noise.py: precision 1.0, recall
    0.44, while the AUM ranking separates flipped from kept labels with AUROC 0.99). Pleiss et al. (2020)
    set the threshold from planted fake-class points instead; a review budget (``fraction``) uses the
    ranking directly."""
    aum = np.asarray(aum, dtype=np.float64)
    if aum.ndim != 1:
        raise TBALInputError(f"expected AUM of shape (n,), got {aum.shape}")
    order = np.argsort(aum, kind="stable")
    if fraction is not None:
        if not 0.0 <= fraction <= 1.0:
            raise TBALInputError(f"expected a fraction in [0, 1], got {fraction!r}")
        return order[: int(np.ceil(fraction * aum.shape[0]))].astype(np.int64)
    return order[aum[order] < threshold].astype(np.int64)
