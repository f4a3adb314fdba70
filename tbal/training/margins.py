"""Per-point margins, eval-mode logits and saliency of a classifier: the pieces that AUM
(:mod:`tbal.training.aum`, Pleiss et al., NeurIPS 2020) and the AUM-guided saliency mixup of training
(:class:`tbal.training.objectives.SaliencyMixup`, Park & Caragea, ACL 2022) share.

Below both, so that training does not import :mod:`tbal.training.aum` (which trains a classifier to
measure AUM).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tbal.networks import Classifier

__all__ = ["easy_mask", "eval_logits", "margins", "saliency", "saliency_partners"]


def margins(logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Margins z[y] − max_{k ≠ y} z[k] (Pleiss et al. 2020) of logits (n, K) for classes (n,); (n,)."""
    assigned = logits.gather(1, classes[:, None])[:, 0]  # (n,)
    others = logits.scatter(1, classes[:, None], float("-inf"))  # (n, K), the assigned entry masked
    return assigned - others.max(dim=1).values


def eval_logits(
    model: Classifier, x: torch.Tensor, batch_size: int = 2048, *, deterministic: bool = False
) -> torch.Tensor:
    """Logits (n, K) of x (n, ...) in eval mode without gradients; the model's mode is restored.
    ``deterministic``: the network's pass without dropout (:meth:`Classifier.deterministic_logits`)
    instead of the model's prediction (which, for MC Dropout, averages T dropout passes)."""
    was_training = model.training
    model.eval()
    forward = model.deterministic_logits if deterministic else (lambda batch: model(batch)[0])
    try:
        with torch.no_grad():
            return torch.cat([forward(x[s : s + batch_size]) for s in range(0, x.shape[0], batch_size)])
    finally:
        model.train(was_training)


def easy_mask(aum: np.ndarray) -> np.ndarray:
    """(n,) bool: AUM ≥ the median AUM (easy), else hard (Park & Caragea 2022)."""
    aum = np.asarray(aum, dtype=np.float64)
    return aum >= np.median(aum)


def saliency(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """|∂L_i/∂z_i| = |softmax(z_i) − t_i| (n, K): the logit gradient of cross-entropy against t."""
    return (F.softmax(logits, dim=1) - targets).abs()


def saliency_partners(
    sal: torch.Tensor, easy: torch.Tensor, chunk: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """For every point i, the point of the *other* half (easy ↔ hard) whose saliency has the highest
    cosine similarity with i's, and the one with the lowest. sal: (n, K); easy: (n,) bool.
    Returns two (n,) int64 index tensors; a point whose other half is empty is its own partner."""
    n = sal.shape[0]
    unit = F.normalize(sal.float(), dim=1, eps=1e-12)  # (n, K)
    similar = torch.arange(n, device=sal.device)
    dissimilar = similar.clone()
    for half in (True, False):
        rows = torch.nonzero(easy == half)[:, 0]  # this half
        cols = torch.nonzero(easy != half)[:, 0]  # the other half
        if rows.numel() == 0 or cols.numel() == 0:
            continue
        for start in range(0, rows.numel(), chunk):
            r = rows[start : start + chunk]
            cosine = unit[r] @ unit[cols].T  # (chunk, |cols|)
            similar[r] = cols[cosine.argmax(dim=1)]
            dissimilar[r] = cols[cosine.argmin(dim=1)]
    return similar, dissimilar
