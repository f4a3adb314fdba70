"""Synthetic data shared by the library's tests, and the .npz files that carry data sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tbal.config import TBALConfig, with_overrides


def blobs_8d(n: int = 1200, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k Gaussian blobs in 8 dimensions (centres of sd 3, unit noise), float32 inputs and int labels."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(k, 8))
    y = rng.integers(0, k, size=n)
    X = centers[y] + rng.normal(size=(n, 8))
    return X.astype(np.float32), y


def three_round_mlp(**overrides: object) -> TBALConfig:
    """A small MLP (one hidden layer of 16) with budgets for three planned rounds (a seed of 60 and two
    batches of 20 of a budget of 100; 200 validation points), for runs on :func:`blobs_8d`, with
    ``overrides`` (``with_overrides`` fields)."""
    base: dict[str, object] = {
        "model.name": "mlp",
        "model.hidden": "16",
        "loop.label_budget": 100,
        "loop.seed_size": 60,
        "loop.batch_size": 20,
        "loop.validation_size": 200,
    }
    return with_overrides(TBALConfig(), {**base, **overrides})


def write_npz(path: Path, **arrays: np.ndarray) -> Path:
    """``arrays`` saved under their names at ``path`` (an .npz data set, as ``tbal.data`` reads it)."""
    # allow_pickle is numpy's default, given so that mypy matches **arrays to savez's **kwds, not to it.
    np.savez(path, allow_pickle=True, **arrays)
    return path
