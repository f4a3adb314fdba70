"""Coverage, auto-labeling error, calibration metrics.

Coverage and auto-labeling error as defined in Vishwakarma et al., "Promises and Pitfalls of
Threshold-based Auto-labeling" (NeurIPS 2023); expected calibration error and reliability diagrams as in
Naeini, Cooper, Hauskrecht, "Obtaining Well Calibrated Probabilities Using Bayesian Binning" (AAAI 2015)
and Guo et al., "On Calibration of Modern Neural Networks" (ICML 2017).
"""

from __future__ import annotations

import numpy as np

from tbal.errors import TBALInputError

# Probabilities are clipped to at least this before the log in the NLL, so that one confident
# mistake (p[y] = 0 in float32) costs −log(1e-12) ≈ 27.6 instead of making the mean infinite.
NLL_MIN_PROB = 1e-12


def coverage(n_auto_labeled: int | np.integer, pool_size: int | np.integer) -> float:
    """Auto-labeled / pool size, in [0, 1]; ``pool_size`` must be positive."""
    for name, value in (("n_auto_labeled", n_auto_labeled), ("pool_size", pool_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TBALInputError(f"expected {name} to be an integer, got {value!r}")
    if pool_size <= 0:
        raise TBALInputError(f"expected a positive pool_size, got {pool_size}")
    if not 0 <= n_auto_labeled <= pool_size:
        raise TBALInputError(f"expected n_auto_labeled in [0, {pool_size}], got {n_auto_labeled}")
    return float(n_auto_labeled) / float(pool_size)


def auto_labeling_error(auto_labels: np.ndarray, truth: np.ndarray) -> float:
    """Share of auto-labels that are wrong: mean of 1[auto_labels ≠ truth] over (n,) labels
    (nan when there are none)."""
    auto_labels = np.asarray(auto_labels)
    truth = np.asarray(truth)
    if auto_labels.ndim != 1 or truth.shape != auto_labels.shape:
        raise TBALInputError(
            "expected auto_labels and truth of the same shape (n,), "
            f"got {auto_labels.shape} and {truth.shape}"
        )
    if auto_labels.size == 0:
        return float("nan")
    return float(np.mean(auto_labels != truth))


def label_knowing_coverage(score: np.ndarray, correct: np.ndarray, epsilon: float) -> float:
    """The largest share of the points, taken by ``score`` from the highest (ties in the given order), whose
    error is ≤ ``epsilon``: what a threshold on ``score`` chosen with the true labels could auto-label, the
    ceiling of any certificate on this score (0.0 when not even the top point is right enough)."""
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
    wrong = ~np.asarray(correct, dtype=bool)[order]
    within = np.flatnonzero(np.cumsum(wrong) / np.arange(1, order.size + 1) <= epsilon)
    return float(within[-1] + 1) / order.size if within.size else 0.0


def reliability_diagram(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Equal-width binning of top-label confidences in [0, 1].

    Bin b covers [b/B, (b+1)/B) for b < B − 1 and the last bin [(B−1)/B, 1] is closed.
    Returns ``(bin_edges (B+1,), accuracy (B,), mean_confidence (B,), counts (B,) int64)``:
    per bin, the mean of ``correct`` and of ``confidence`` over its points (nan for an empty bin),
    and how many points it holds.
    """
    conf, corr = _check_calibration_inputs(confidence, correct, n_bins)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bin b holds edges[b] ≤ c < edges[b+1] (torch.bucketize(c, edges, right=True) − 1); 1.0 joins the last
    index = np.minimum(np.searchsorted(edges, conf, side="right") - 1, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.bincount(index, weights=corr, minlength=n_bins) / counts
        mean_confidence = np.bincount(index, weights=conf, minlength=n_bins) / counts
    return edges, accuracy, mean_confidence, counts


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> float:
    """Top-label ECE with ``n_bins`` equal-width bins (L1 norm):

        ECE = Σ_b (n_b / n) · |acc_b − conf_b|,

    acc_b and conf_b the mean correctness and confidence in bin b (see :func:`reliability_diagram`).
    Equals torchmetrics' ``MulticlassCalibrationError(norm="l1")`` on the same confidences (max
    probability) and correctness, except that torchmetrics puts confidences exactly equal to 1.0 in a
    bin of their own while here they join the last bin. nan for no points.
    """
    _, accuracy, mean_confidence, counts = reliability_diagram(confidence, correct, n_bins)
    n = int(counts.sum())
    if n == 0:
        return float("nan")
    filled = counts > 0
    return float(np.sum(counts[filled] / n * np.abs(accuracy[filled] - mean_confidence[filled])))


def negative_log_likelihood(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean −log p[y] over points: ``probs`` (n, K) rows of probabilities, ``y`` (n,) int labels in
    [0, K). Probabilities are clipped below at 1e-12 (a confident mistake costs ≈ 27.6, not inf);
    nan for no points."""
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y)
    if probs.ndim != 2:
        raise TBALInputError(f"expected probs of shape (n, K), got {probs.shape}")
    if y.shape != (probs.shape[0],):
        raise TBALInputError(f"expected labels of shape ({probs.shape[0]},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise TBALInputError(f"expected integer labels, got dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= probs.shape[1]):
        raise TBALInputError(f"expected labels in [0, {probs.shape[1]}), got [{y.min()}, {y.max()}]")
    if not np.all(np.isfinite(probs)) or probs.min(initial=0.0) < 0.0 or probs.max(initial=0.0) > 1.0 + 1e-6:
        raise TBALInputError("expected probabilities in [0, 1]")
    if y.size == 0:
        return float("nan")
    p = probs[np.arange(y.size), y]
    return float(np.mean(-np.log(np.maximum(p, NLL_MIN_PROB))))


def _check_calibration_inputs(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise TBALInputError(f"expected n_bins to be a positive integer, got {n_bins!r}")
    conf = np.asarray(confidence, dtype=np.float64)
    corr = np.asarray(correct)
    if conf.ndim != 1 or corr.shape != conf.shape:
        raise TBALInputError(
            f"expected confidence and correct of the same shape (n,), got {conf.shape} and {corr.shape}"
        )
    if not np.all(np.isfinite(conf)) or (conf.size and (conf.min() < 0.0 or conf.max() > 1.0)):
        raise TBALInputError("expected confidences in [0, 1]")
    if corr.dtype != np.bool_ and not np.all((corr == 0) | (corr == 1)):
        raise TBALInputError("expected correct to hold booleans or 0/1 values")
    return conf, corr.astype(np.float64)
