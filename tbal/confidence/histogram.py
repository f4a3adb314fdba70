"""Top-label histogram binning (Gupta & Ramdas, "Top-label calibration and multiclass-to-binary
reductions", ICLR 2022; arXiv 2107.08353, 2021)."""

from __future__ import annotations

import numpy as np

from tbal.confidence._common import UniformMassBins, require_points, with_tie_break
from tbal.confidence.base import ConfidenceFunction
from tbal.confidence.softmax import max_softmax
from tbal.config import ConfigError
from tbal.predictions import Predictions


class HistogramBinning(ConfidenceFunction):
    """Top-label histogram binning on the max softmax score s(x) = softmax(z)[ŷ].

    Fit, for each predicted class c with n_c ≥ m = ``points_per_bin`` D_cal points: uniform-mass bins
    of about m points each (⌊n_c / m⌋ bins) on s over the points with ŷ = c; bin value = the share of
    those points with y = ŷ. A class with fewer than m points (or none) uses one pooled binning, built
    the same way over all D_cal points (⌊n / m⌋ bins, at least 1).

    Score of a new point with prediction c: the value v of the bin its s falls in (its class's binning,
    or the pooled one), with a tie-break: (1 − 1e-6)·v + 1e-6·s. All points of a bin share v, so
    without it a threshold could only cut between bins; the tie-break ranks them by s inside a bin and
    moves no score by more than 1e-6.
    """

    name = "histogram"

    def __init__(self, num_classes: int, points_per_bin: int = 30) -> None:
        super().__init__(num_classes)
        if not isinstance(points_per_bin, int) or isinstance(points_per_bin, bool) or points_per_bin < 1:
            raise ConfigError(f"histogram points_per_bin must be a positive integer, got {points_per_bin!r}")
        self.points_per_bin = points_per_bin
        self.class_bins: dict[int, UniformMassBins] = {}
        self.pooled_bins: UniformMassBins | None = None

    def _fit(self, cal: Predictions, y: np.ndarray, seed: int) -> None:
        require_points(self.name, len(cal), 1)
        s = max_softmax(cal.logits)
        pred = cal.predicted
        correct = (pred == y).astype(np.float64)
        m = self.points_per_bin
        self.pooled_bins = _binning(s, correct, max(1, len(s) // m))
        self.class_bins = {}
        for c in range(self.num_classes):
            mask = pred == c
            n_c = int(mask.sum())
            if n_c >= m:
                self.class_bins[c] = _binning(s[mask], correct[mask], n_c // m)

    def _score(self, preds: Predictions) -> np.ndarray:
        assert self.pooled_bins is not None
        s = max_softmax(preds.logits)
        pred = preds.predicted
        value = self.pooled_bins.value(s)
        for c, bins in self.class_bins.items():
            mask = pred == c
            if mask.any():
                value[mask] = bins.value(s[mask])
        return with_tie_break(value, s)


def _binning(scores: np.ndarray, targets: np.ndarray, n_bins: int) -> UniformMassBins:
    bins = UniformMassBins(scores, n_bins)
    bins.set_values(scores, targets)  # every bin holds ≥ 1 of these scores: no empty bin
    return bins
