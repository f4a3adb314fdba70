"""Coverage, auto-labeling error, calibration metrics.

CONTRACT (stub, to be implemented): keep these names and signatures.
"""

from __future__ import annotations

import numpy as np


def coverage(n_auto_labeled: int, pool_size: int) -> float:
    """Auto-labeled / pool size."""
    raise NotImplementedError


def auto_labeling_error(auto_labels: np.ndarray, truth: np.ndarray) -> float:
    """Share of auto-labels that are wrong (nan when there are none)."""
    raise NotImplementedError


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> float:
    """Top-label ECE with equal-width bins (the torchmetrics definition, L1 norm)."""
    raise NotImplementedError


def negative_log_likelihood(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean −log p[y]."""
    raise NotImplementedError
