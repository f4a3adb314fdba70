"""Helpers shared by the calibrators: stable log-softmax, uniform-mass binning, the tie-break."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

from tbal.errors import TBALInputError

# Binned calibrators give every point of a bin the same value. Thresholds are set on these scores, so
# without a tie-break a threshold could only fall between bins. We return
# (1 − TIE_BREAK)·bin value + TIE_BREAK·raw score, raw score in [0, 1]: the score moves by at most
# TIE_BREAK, stays in [0, 1], and points of one bin are ranked by their raw score.
TIE_BREAK = 1e-6


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one intra-op thread, then restore the setting. The calibrators fit tiny models
    (e.g. batches of 64 × ~100): extra threads only add synchronisation, and on a busy 2-core machine
    they cost 5–20× the CPU time (measured). torch's thread count is process-wide, so a torch job
    running concurrently in another thread of the same process also runs single-threaded meanwhile."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """(n, K) -> (n, K) float64 log-probabilities, computed stably."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def require_points(name: str, n: int, minimum: int) -> None:
    """Raise when D_cal has fewer than ``minimum`` points for this calibrator."""
    if n < minimum:
        raise TBALInputError(f"{name}: expected at least {minimum} calibration points, got {n}")


def with_tie_break(value: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """(1 − TIE_BREAK)·value + TIE_BREAK·raw, both (n,) in [0, 1]."""
    return (1.0 - TIE_BREAK) * value + TIE_BREAK * np.clip(raw, 0.0, 1.0)


class UniformMassBins:
    """Uniform-mass (equal-count) bins on a scalar score, with one value per bin.

    Edges are the midpoints between the sorted scores where ``np.array_split`` cuts them into
    ``n_bins`` nearly equal parts; a score s falls in bin ``searchsorted(edges, s, side="right")``.
    Repeated scores can leave a bin empty under this rule: its edge is dropped (the bin merges into a
    neighbour), so every bin holds at least one of the scores it was built from.
    """

    def __init__(self, scores: np.ndarray, n_bins: int) -> None:
        s = np.sort(np.asarray(scores, dtype=np.float64))
        if s.size == 0:
            raise TBALInputError("uniform-mass binning: expected at least 1 score, got 0")
        n_bins = max(1, min(int(n_bins), s.size))
        starts = np.cumsum([len(part) for part in np.array_split(s, n_bins)])[:-1]
        edges = np.unique((s[starts - 1] + s[starts]) / 2.0)
        while edges.size:
            counts = np.bincount(np.searchsorted(edges, s, side="right"), minlength=edges.size + 1)
            empty = np.flatnonzero(counts == 0)
            if empty.size == 0:
                break
            drop = np.unique(np.maximum(empty - 1, 0))  # bin j's lower edge, or bin 0's upper edge
            edges = np.delete(edges, drop)
        self.edges = edges
        self.values = np.full(edges.size + 1, np.nan)

    @property
    def n_bins(self) -> int:
        return int(self.edges.size + 1)

    def assign(self, scores: np.ndarray) -> np.ndarray:
        """(n,) bin index of each score."""
        return np.searchsorted(self.edges, np.asarray(scores, dtype=np.float64), side="right")

    def set_values(self, scores: np.ndarray, targets: np.ndarray, fallback: np.ndarray | None = None) -> None:
        """Bin value = mean of ``targets`` over the ``scores`` in the bin; an empty bin takes
        ``fallback[bin]`` (or nan when there is none)."""
        index = self.assign(scores)
        counts = np.bincount(index, minlength=self.n_bins)
        sums = np.bincount(index, weights=np.asarray(targets, dtype=np.float64), minlength=self.n_bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            values = sums / counts
        if fallback is not None:
            values = np.where(counts > 0, values, fallback)
        self.values = values

    def value(self, scores: np.ndarray) -> np.ndarray:
        """(n,) the value of the bin each score falls in."""
        return np.asarray(self.values[self.assign(scores)], dtype=np.float64)
