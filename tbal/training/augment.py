"""Augmentations and the labels that go with them: label smoothing, mixup, CutMix and AutoLabel.

Pure tensor functions; the train-time methods of :mod:`tbal.training.objectives` call them with their own
seeded numpy generator. Targets are distributions (B, K) throughout, so hard, soft and sampled targets mix
alike.

- Label smoothing (Szegedy et al., "Rethinking the Inception Architecture", CVPR 2016):
  t ← (1 − ε)·t + ε/K.
- Mixup (Zhang et al., "mixup: Beyond Empirical Risk Minimization", ICLR 2018): x̃ = λ·x_i + (1 − λ)·x_j,
  t̃ = λ·t_i + (1 − λ)·t_j, λ ~ Beta(α, α), j a random permutation of the batch.
- CutMix (Yun et al., "CutMix", ICCV 2019): a box of area (1 − λ)·H·W from x_j pasted into x_i; the
  targets are mixed by the box's actual area share.
- AutoLabel (Qin, Wang, Lakshminarayanan, Chi, Beutel, "What Are Effective Labels for Augmented Data?
  Improving Calibration and Robustness with AutoLabel", 2023, arXiv 2302.11188): augmented points are put
  in N buckets by their distance from the clean data (the augmentation's strength); each bucket b has a
  target confidence ỹ_b for the original class, the rest 1 − ỹ_b spread uniformly over the other K − 1
  classes; after each epoch the same augmentation is applied to validation data and
  ỹ_b ← clip(ỹ_b − α·ECE_b·sign(conf_b − acc_b), acc_b, 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from tbal.errors import TBALInputError
from tbal.metrics import expected_calibration_error

__all__ = [
    "AugmentedBatch",
    "AutoLabelTargets",
    "autolabel_augment",
    "bucket_of",
    "cutmix",
    "mix",
    "smooth_labels",
]


def smooth_labels(targets: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Label smoothing of target distributions (B, K): (1 − ε)·t + ε/K (Szegedy et al. 2016)."""
    if not 0.0 <= epsilon < 1.0:
        raise TBALInputError(f"expected a smoothing ε in [0, 1), got {epsilon!r}")
    return (1.0 - epsilon) * targets + epsilon / targets.shape[1]


def mix(
    x: torch.Tensor, targets: torch.Tensor, lam: float | torch.Tensor, partner: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al. 2018): x̃_i = λ·x_i + (1 − λ)·x_{partner[i]}, likewise the targets.

    x: (B, ...) inputs; targets: (B, K) distributions; lam: one λ or (B,) per-row λ; partner: (B,) int64
    rows of the same batch (a random permutation in mixup). Returns (B, ...) mixed inputs and (B, K)
    mixed targets.
    """
    lam_t = torch.as_tensor(lam, dtype=x.dtype, device=x.device)
    lam_x = _per_row(lam_t, x) if lam_t.ndim else lam_t
    lam_y = lam_t[:, None] if lam_t.ndim else lam_t
    return lam_x * x + (1 - lam_x) * x[partner], lam_y * targets + (1 - lam_y) * targets[partner]


def cutmix(
    x: torch.Tensor, targets: torch.Tensor, lam: float, partner: torch.Tensor, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix (Yun et al. 2019) on images x (B, C, H, W): one box of height ⌊H·√(1 − λ)⌋ and width
    ⌊W·√(1 − λ)⌋, centred uniformly at random and clipped to the image, is copied from x[partner] into
    every image of the batch; the targets are mixed with λ' = 1 − (box area)/(H·W), the share the box
    actually leaves to x_i after clipping. Returns (B, C, H, W) inputs and (B, K) targets."""
    if x.ndim != 4:
        raise TBALInputError(f"cutmix expects images of shape (B, C, H, W), got {tuple(x.shape)}")
    h, w = x.shape[2], x.shape[3]
    cut = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(h * cut), int(w * cut)
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
    mixed = x.clone()
    mixed[:, :, top:bottom, left:right] = x[partner][:, :, top:bottom, left:right]
    lam_adjusted = 1.0 - (bottom - top) * (right - left) / (h * w)
    return mixed, lam_adjusted * targets + (1.0 - lam_adjusted) * targets[partner]


# ---------------------------------------------------------------------------------------------- AutoLabel


@dataclass(frozen=True)
class AugmentedBatch:
    """B augmented inputs (B, ...), each one's distance from the clean data in [0, 1] (B,), and the row
    of the batch whose class it keeps (B,) int64 (the dominant image of a mixup pair, itself for noise)."""

    x: torch.Tensor
    distance: torch.Tensor
    primary: torch.Tensor


def autolabel_augment(
    x: torch.Tensor, kind: str, rng: np.random.Generator, *, noise_scale: float
) -> AugmentedBatch:
    """Augment each row of x (B, ...) with its own strength, drawn uniformly, and report it as a distance.

    ``mixup``: partner j from a random permutation, λ ~ U(0, 1) folded to λ' = max(λ, 1 − λ), so the row
    keeps the class of the dominant image; distance 2·(1 − λ') (0: clean, 1: an even blend). λ is uniform
    rather than Beta(α, α) so that every distance bucket gets points.
    ``noise``: x + σ·N(0, 1) with σ ~ U(0, noise_scale) per row; distance σ / noise_scale.
    """
    b = x.shape[0]
    rows = torch.arange(b, device=x.device)
    if kind == "mixup":
        raw = rng.random(b)
        lam = torch.from_numpy(np.maximum(raw, 1.0 - raw).astype(np.float32)).to(x.device)  # (B,) in [½, 1]
        partner = torch.from_numpy(rng.permutation(b)).to(x.device)
        mixed = _per_row(lam, x) * x + (1 - _per_row(lam, x)) * x[partner]
        return AugmentedBatch(mixed, 2.0 * (1.0 - lam), rows)
    if kind == "noise":
        strength = torch.from_numpy(rng.random(b).astype(np.float32)).to(x.device)  # (B,) in [0, 1)
        noise = torch.from_numpy(rng.standard_normal(size=tuple(x.shape)).astype(np.float32)).to(x.device)
        return AugmentedBatch(x + _per_row(noise_scale * strength, x) * noise, strength, rows)
    raise TBALInputError(f"autolabel augmentation must be mixup or noise, got {kind!r}")


def _per_row(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B,) values reshaped to (B, 1, …) so that they broadcast over the rows of x."""
    return values.reshape(-1, *([1] * (x.ndim - 1)))


def bucket_of(distance: torch.Tensor, n_buckets: int) -> torch.Tensor:
    """Bucket index ⌊distance·N⌋ of distances in [0, 1], clipped to [0, N − 1]; (B,) int64."""
    return (distance * n_buckets).long().clamp(0, n_buckets - 1)


class AutoLabelTargets:
    """The AutoLabel target confidences ỹ_b of N distance buckets and their calibration-guided update.

    ``confidence`` starts at 1 in every bucket (the one-hot labels augmented data usually gets) and only
    :meth:`update` changes it.
    """

    def __init__(self, n_buckets: int, num_classes: int, step: float) -> None:
        if n_buckets <= 0 or num_classes < 2 or step < 0:
            raise TBALInputError(
                f"expected n_buckets > 0, num_classes ≥ 2, step ≥ 0; got {n_buckets}, {num_classes}, {step}"
            )
        self.num_classes = num_classes
        self.step = step
        self.confidence = np.ones(n_buckets, dtype=np.float64)  # ỹ_b

    def targets(self, classes: torch.Tensor, buckets: torch.Tensor) -> torch.Tensor:
        """Target distributions (B, K): ỹ_b on each row's class, (1 − ỹ_b)/(K − 1) on every other class."""
        conf = torch.as_tensor(self.confidence, dtype=torch.float32, device=classes.device)[buckets]  # (B,)
        rest = ((1.0 - conf) / (self.num_classes - 1))[:, None]  # (B, 1)
        out = rest.expand(-1, self.num_classes).clone()  # (B, K)
        out[torch.arange(classes.shape[0], device=classes.device), classes] = conf
        return out

    def update(self, probs: np.ndarray, labels: np.ndarray, buckets: np.ndarray) -> None:
        """One AutoLabel step from augmented validation points: probs (m, K) of the model, labels (m,) the
        classes the augmented points keep, buckets (m,). Per bucket with points: conf = mean max-prob,
        acc = mean 1[argmax = label], ECE with 10 bins, then ỹ ← clip(ỹ − α·ECE·sign(conf − acc), acc, 1).
        Buckets without points keep their ỹ."""
        top = probs.max(axis=1)
        correct = probs.argmax(axis=1) == labels
        for b in range(self.confidence.shape[0]):
            inside = buckets == b
            if not inside.any():
                continue
            conf, acc = float(top[inside].mean()), float(correct[inside].mean())
            ece = expected_calibration_error(top[inside], correct[inside])
            moved = self.confidence[b] - self.step * ece * np.sign(conf - acc)
            self.confidence[b] = float(np.clip(moved, acc, 1.0))
