"""Training classifiers on target distributions (hard labels are one-hot rows), and prediction.

CONTRACT (stub, to be implemented): keep these names and signatures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from tbal.config import TrainConfig
from tbal.models import Classifier


@dataclass(frozen=True)
class Predictions:
    """Classifier outputs for n points: logits (n, K) and penultimate features (n, d), float32 numpy."""

    logits: np.ndarray
    features: np.ndarray

    @property
    def probs(self) -> np.ndarray:
        """Softmax of the logits, (n, K)."""
        z = self.logits - self.logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    @property
    def predicted(self) -> np.ndarray:
        """ŷ = argmax logits, (n,) int64."""
        return self.logits.argmax(axis=1).astype(np.int64)

    def subset(self, index: np.ndarray) -> Predictions:
        return Predictions(self.logits[index], self.features[index])

    def __len__(self) -> int:
        return int(self.logits.shape[0])


def one_hot(y: np.ndarray, num_classes: int) -> np.ndarray:
    """(n,) int labels -> (n, K) float32 one-hot target distributions."""
    out = np.zeros((y.shape[0], num_classes), dtype=np.float32)
    out[np.arange(y.shape[0]), y] = 1.0
    return out


def train_classifier(
    model: Classifier,
    X: np.ndarray,
    targets: np.ndarray,
    config: TrainConfig,
    *,
    seed: int,
    device: torch.device | None = None,
    progress: Callable[[float], None] | None = None,
) -> Classifier:
    """Train ``model`` in place on prepared inputs X (n, ...) and target distributions (n, K)
    (rows sum to 1; ``config.targets`` says how they are used: hard = argmax, soft, sampled)."""
    raise NotImplementedError


def predict(
    model: Classifier, X: np.ndarray, *, device: torch.device | None = None, batch_size: int = 2048
) -> Predictions:
    """Logits and penultimate features of X in eval mode, no gradients."""
    raise NotImplementedError
