"""Synthetic data shared by the library's loop tests."""

from __future__ import annotations

import numpy as np


def blobs_8d(n: int = 1200, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k Gaussian blobs in 8 dimensions (centres of sd 3, unit noise), float32 inputs and int labels."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(k, 8))
    y = rng.integers(0, k, size=n)
    X = centers[y] + rng.normal(size=(n, 8))
    return X.astype(np.float32), y
