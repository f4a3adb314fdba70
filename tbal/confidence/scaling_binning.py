"""Scaling-binning calibrator (Kumar, Liang, Ma, "Verified Uncertainty Calibration", NeurIPS 2019),
top-label version."""

from __future__ import annotations

import numpy as np

from tbal.confidence._common import UniformMassBins, require_points, with_tie_break
from tbal.confidence.base import ConfidenceFunction
from tbal.confidence.softmax import max_softmax
from tbal.confidence.temperature import fit_temperature
from tbal.config import ConfigError
from tbal.predictions import Predictions


class ScalingBinning(ConfidenceFunction):
    """Scaling-binning on the top-label confidence, as in Kumar et al. (2019), Algorithm 1:

    D_cal is split at random into thirds T1, T2, T3 (``np.random.default_rng(seed).permutation``, cut by
    ``np.array_split``).
      1. Scaling: fit a temperature T on T1 (NLL); g(x) = max_k softmax(z / T)_k.
      2. Binning scheme: ``n_bins`` uniform-mass bins on g over T2 (fewer when T2 has fewer points).
      3. Discretisation: bin value = mean of g over the T3 points in the bin — the mean *scaled
         confidence*, not the accuracy (that is what makes the method's calibration error verifiable).
         A bin that no T3 point falls in takes the mean of g over its T2 points.
    Score of a new point: (1 − 1e-6)·value of the bin its g falls in + 1e-6·g, the tie-break that
    ranks the points of one bin by g (see histogram binning). Needs at least 3 calibration points.
    """

    name = "scaling-binning"

    def __init__(self, num_classes: int, n_bins: int = 15) -> None:
        super().__init__(num_classes)
        if not isinstance(n_bins, int) or isinstance(n_bins, bool) or n_bins < 1:
            raise ConfigError(f"scaling-binning n_bins must be a positive integer, got {n_bins!r}")
        self.n_bins = n_bins
        self.temperature = 1.0
        self.bins: UniformMassBins | None = None

    def _fit(self, cal: Predictions, y: np.ndarray, seed: int) -> None:
        require_points(self.name, len(cal), 3)
        part1, part2, part3 = np.array_split(np.random.default_rng(seed).permutation(len(cal)), 3)
        self.temperature = fit_temperature(cal.logits[part1], y[part1])
        g = self._scaled(cal.logits)
        bins = UniformMassBins(g[part2], self.n_bins)
        bins.set_values(g[part2], g[part2])
        bins.set_values(g[part3], g[part3], fallback=bins.values)
        self.bins = bins

    def _score(self, preds: Predictions) -> np.ndarray:
        assert self.bins is not None
        g = self._scaled(preds.logits)
        return with_tie_break(self.bins.value(g), g)

    def _scaled(self, logits: np.ndarray) -> np.ndarray:
        return max_softmax(np.asarray(logits, dtype=np.float64) / self.temperature)
