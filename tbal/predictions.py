"""A classifier's outputs on n points (:class:`Predictions`: logits and penultimate features) and
:func:`predict`, which computes them in eval mode.

Its own module, below training (:mod:`tbal.training`) and the confidence functions that read it, so
that neither imports the other for a type.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tbal.errors import TBALInputError
from tbal.networks import Classifier

__all__ = ["Predictions", "check_inputs", "predict"]


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


def predict(
    model: Classifier, X: np.ndarray, *, device: torch.device | None = None, batch_size: int = 2048
) -> Predictions:
    """Logits and penultimate features of X in eval mode, no gradients.

    X: (n, *model.input_shape) prepared inputs (n may be 0). ``device``: None uses the device the model
    is on; otherwise the model is moved there. The model's train / eval mode is restored afterwards.
    Returns float32 logits (n, K) and features (n, d).
    """
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise TBALInputError(f"batch_size must be a positive integer, got {batch_size!r}")
    X32 = check_inputs(model, X)
    if device is not None:
        model.to(device)
    else:
        device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    logits = np.empty((X32.shape[0], model.num_classes), dtype=np.float32)
    features = np.empty((X32.shape[0], model.feature_dim), dtype=np.float32)
    try:
        with torch.no_grad():
            for start in range(0, X32.shape[0], batch_size):
                xb = torch.from_numpy(X32[start : start + batch_size]).to(device)
                z, h = model(xb)  # (B, K), (B, d)
                logits[start : start + xb.shape[0]] = z.float().cpu().numpy()
                features[start : start + xb.shape[0]] = h.float().cpu().numpy()
    finally:
        model.train(was_training)
    return Predictions(logits=logits, features=features)


def check_inputs(model: Classifier, X: np.ndarray) -> np.ndarray:
    """X (n, *model.input_shape) as contiguous, writable float32; TBALInputError saying what was expected."""
    if not isinstance(X, np.ndarray):
        raise TBALInputError(f"expected X as a numpy array, got {type(X).__name__}")
    expected = tuple(model.input_shape)
    if X.ndim != len(expected) + 1 or tuple(X.shape[1:]) != expected:
        raise TBALInputError(f"expected X of shape (n, {', '.join(map(str, expected))}), got {X.shape}")
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise TBALInputError(f"expected X as prepared float32 inputs, got dtype {X.dtype}")
    out = np.ascontiguousarray(X, dtype=np.float32)
    # torch.from_numpy warns on read-only arrays (e.g. np.frombuffer over stored bytes): copy those once
    return out if out.flags.writeable else out.copy()
