"""Metrics against hand-computed values and independent references (torchmetrics, scikit-learn, torch)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss
from torchmetrics.classification import MulticlassCalibrationError

from tbal.errors import TBALInputError
from tbal.metrics import (
    auto_labeling_error,
    coverage,
    expected_calibration_error,
    label_knowing_coverage,
    negative_log_likelihood,
    reliability_diagram,
)


def test_coverage_is_the_auto_labeled_share_of_the_pool() -> None:
    assert coverage(30, 120) == 0.25
    assert coverage(0, 5) == 0.0
    assert coverage(5, 5) == 1.0
    # numpy counts are accepted (coverage checks for np.integer), though its annotation says int
    assert coverage(np.int64(3), np.int64(4)) == 0.75


@pytest.mark.parametrize(
    ("n", "pool", "message"),
    [
        (1, 0, "positive pool_size"),
        (6, 5, r"n_auto_labeled in \[0, 5\]"),
        (-1, 5, "n_auto_labeled"),
        (0.5, 2, "integer"),
    ],
)
def test_coverage_rejects_bad_counts(n: int, pool: int, message: str) -> None:
    with pytest.raises(TBALInputError, match=message):
        coverage(n, pool)


def test_auto_labeling_error_is_the_share_of_wrong_auto_labels() -> None:
    assert auto_labeling_error(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 0])) == 0.5
    assert auto_labeling_error(np.array([3]), np.array([3])) == 0.0
    assert math.isnan(auto_labeling_error(np.array([], dtype=int), np.array([], dtype=int)))
    with pytest.raises(TBALInputError, match=r"same shape \(n,\), got \(2,\) and \(3,\)"):
        auto_labeling_error(np.array([0, 1]), np.array([0, 1, 2]))


def test_ece_hand_example() -> None:
    # Bins of width 0.1: 0.05 -> bin 0 (acc 0), 0.15 -> bin 1 (acc 1), 0.95 and 1.0 -> bin 9 (acc 1).
    conf = np.array([0.05, 0.15, 0.95, 1.0])
    correct = np.array([False, True, True, True])
    expected = (0.05 + 0.85 + 2 * abs(1.0 - 0.975)) / 4
    assert expected_calibration_error(conf, correct, n_bins=10) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("n_bins", [1, 5, 10, 15])
@pytest.mark.parametrize("seed", [0, 1])
def test_ece_matches_torchmetrics(n_bins: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k = 3000, 5
    probs = rng.dirichlet(np.full(k, 0.4), size=n)
    # Correctness related to confidence, but miscalibrated, so the ECE is far from 0.
    y = np.where(rng.random(n) < probs.max(axis=1) ** 2, probs.argmax(axis=1), rng.integers(0, k, n))
    ours = expected_calibration_error(probs.max(axis=1), probs.argmax(axis=1) == y, n_bins=n_bins)
    metric = MulticlassCalibrationError(num_classes=k, n_bins=n_bins, norm="l1")
    reference = float(metric(torch.from_numpy(probs), torch.from_numpy(y)))
    assert ours > 0.01
    assert ours == pytest.approx(reference, abs=1e-6)


def test_ece_is_small_for_calibrated_confidences_and_large_for_overconfident_ones() -> None:
    rng = np.random.default_rng(3)
    conf = rng.uniform(0.2, 1.0, 200_000)
    correct = rng.random(conf.size) < conf
    assert expected_calibration_error(conf, correct) < 0.005
    overconfident = rng.random(conf.size) < conf - 0.1
    assert expected_calibration_error(conf, overconfident) == pytest.approx(0.1, abs=0.01)


def test_reliability_diagram_bins() -> None:
    conf = np.array([0.0, 0.1, 0.5, 0.55, 0.99, 1.0])
    correct = np.array([0, 1, 1, 0, 1, 1])
    edges, accuracy, mean_conf, counts = reliability_diagram(conf, correct, n_bins=10)
    np.testing.assert_allclose(edges, np.linspace(0, 1, 11))
    # Left-closed bins ([0.1, 0.2) holds 0.1), and 1.0 joins the last bin.
    np.testing.assert_array_equal(counts, [1, 1, 0, 0, 0, 2, 0, 0, 0, 2])
    assert counts.dtype == np.int64
    np.testing.assert_allclose(accuracy[[0, 1, 5, 9]], [0.0, 1.0, 0.5, 1.0])
    np.testing.assert_allclose(mean_conf[[0, 1, 5, 9]], [0.0, 0.1, 0.525, 0.995])
    assert np.isnan(accuracy[2]) and np.isnan(mean_conf[2])


def test_calibration_inputs_are_validated() -> None:
    with pytest.raises(TBALInputError, match=r"same shape \(n,\)"):
        expected_calibration_error(np.array([0.5, 0.6]), np.array([1]))
    with pytest.raises(TBALInputError, match=r"confidences in \[0, 1\]"):
        expected_calibration_error(np.array([1.2]), np.array([1]))
    with pytest.raises(TBALInputError, match="booleans or 0/1"):
        expected_calibration_error(np.array([0.5]), np.array([2]))
    with pytest.raises(TBALInputError, match="n_bins to be a positive integer"):
        reliability_diagram(np.array([0.5]), np.array([True]), n_bins=0)
    assert math.isnan(expected_calibration_error(np.array([]), np.array([], dtype=bool)))


def test_nll_matches_sklearn_and_torch() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(500, 4)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = rng.integers(0, 4, 500)
    ours = negative_log_likelihood(probs, y)
    assert ours == pytest.approx(log_loss(y, probs, labels=range(4)), rel=1e-10)
    reference = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y))
    assert ours == pytest.approx(float(reference), rel=1e-10)


def test_nll_clips_zero_probabilities_and_validates() -> None:
    probs = np.array([[1.0, 0.0], [0.5, 0.5]])
    assert negative_log_likelihood(probs, np.array([1, 0])) == pytest.approx(
        (-math.log(1e-12) + math.log(2)) / 2
    )
    with pytest.raises(TBALInputError, match=r"labels in \[0, 2\)"):
        negative_log_likelihood(probs, np.array([0, 2]))
    with pytest.raises(TBALInputError, match=r"labels of shape \(2,\)"):
        negative_log_likelihood(probs, np.array([0]))
    with pytest.raises(TBALInputError, match=r"probs of shape \(n, K\)"):
        negative_log_likelihood(np.array([0.5, 0.5]), np.array([0]))
    with pytest.raises(TBALInputError, match="integer labels"):
        negative_log_likelihood(probs, np.array([0.0, 1.0]))
    with pytest.raises(TBALInputError, match=r"probabilities in \[0, 1\]"):
        negative_log_likelihood(np.array([[-0.1, 1.1]]), np.array([0]))


def test_label_knowing_coverage_is_the_largest_top_share_within_epsilon() -> None:
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    correct = np.array([1, 1, 1, 0, 1, 1, 1, 1, 0, 0], dtype=bool)
    # top 3 clean; top 8 hold one mistake (12.5 %); top 10 three (30 %)
    assert label_knowing_coverage(score, correct, 0.0) == 0.3
    assert label_knowing_coverage(score, correct, 0.125) == 0.8
    assert label_knowing_coverage(score, correct, 0.3) == 1.0
    # the order is by score, not by position
    assert label_knowing_coverage(score[::-1], correct[::-1], 0.0) == 0.3
    assert label_knowing_coverage(score, ~correct, 0.0) == 0.0
