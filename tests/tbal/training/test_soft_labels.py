"""Vote aggregation: hand examples, sampling frequencies, and Dawid–Skene on a planted noisy annotator."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tbal.errors import TBALInputError
from tbal.training.soft_labels import (
    counts_from_annotations,
    dawid_skene,
    majority_vote,
    sample_votes,
    votes_to_distribution,
)


def test_votes_become_distributions_and_majorities() -> None:
    counts = np.array([[3, 1, 0], [0, 0, 5], [2, 2, 1]])
    dist = votes_to_distribution(counts)
    np.testing.assert_allclose(dist, [[0.75, 0.25, 0.0], [0.0, 0.0, 1.0], [0.4, 0.4, 0.2]], atol=1e-7)
    assert dist.dtype == np.float32
    np.testing.assert_array_equal(majority_vote(counts), [0, 2, 0])  # tie → lowest index


def test_random_tie_break_draws_only_tied_classes_evenly() -> None:
    counts = np.tile([[2, 0, 2, 1]], (4000, 1))
    picked = majority_vote(counts, np.random.default_rng(0))
    assert set(np.unique(picked)) == {0, 2}
    assert abs(np.mean(picked == 0) - 0.5) < 0.03  # sd 0.008: a 4-sigma band


def test_sample_votes_follow_the_counts() -> None:
    counts = np.tile([[1, 0, 3]], (20000, 1))
    votes = sample_votes(counts, np.random.default_rng(1))
    freq = np.bincount(votes, minlength=3) / votes.size
    np.testing.assert_allclose(freq, [0.25, 0.0, 0.75], atol=0.015)  # sd 0.003


def test_counts_reject_items_without_votes() -> None:
    with pytest.raises(TBALInputError, match="item 1 has none"):
        votes_to_distribution(np.array([[1, 0], [0, 0]]))
    with pytest.raises(TBALInputError, match=r"shape \(n, K\)"):
        majority_vote(np.array([1, 2, 3]))


def _planted_crowd(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """600 items, K = 4, five annotators who label every item: 0–3 right with probability 0.65 (errors
    uniform over the other classes), annotator 4 says (t + 1) mod K with probability 0.9 (a planted,
    systematic labeler that majority vote counts as a fifth honest voice)."""
    rng = np.random.default_rng(seed)
    n, k = 600, 4
    truth = rng.integers(0, k, n)
    items, annotators, labels = [], [], []
    for a in range(5):
        if a < 4:
            wrong = (truth + rng.integers(1, k, n)) % k
            said = np.where(rng.random(n) < 0.65, truth, wrong)
        else:
            said = np.where(rng.random(n) < 0.9, (truth + 1) % k, rng.integers(0, k, n))
        items.append(np.arange(n))
        annotators.append(np.full(n, a))
        labels.append(said)
    return truth, np.concatenate(items), np.concatenate(annotators), np.concatenate(labels)


def test_dawid_skene_recovers_a_planted_noisy_annotator() -> None:
    truth, items, annotators, labels = _planted_crowd(seed=3)
    n, k = truth.size, 4
    result = dawid_skene(items, annotators, labels, n_items=n, num_classes=k)
    assert result.converged
    np.testing.assert_allclose(result.posteriors.sum(axis=1), 1.0)
    np.testing.assert_allclose(result.confusion.sum(axis=2), 1.0)
    diag = np.array([np.trace(result.confusion[a]) / k for a in range(5)])
    # honest annotators: diagonal near 0.65; the planted one: far from identity, its mass on t → t + 1
    assert np.all(np.abs(diag[:4] - 0.65) < 0.08), diag
    assert diag[4] < 0.1, diag
    shifted = np.mean([result.confusion[4, c, (c + 1) % k] for c in range(k)])
    assert shifted > 0.8
    # the posteriors beat the vote count, which the systematic annotator misleads
    mv_accuracy = np.mean(majority_vote(counts_from_annotations(items, labels, n, k)) == truth)
    ds_accuracy = np.mean(result.labels == truth)
    assert ds_accuracy > mv_accuracy + 0.03, (ds_accuracy, mv_accuracy)


def test_dawid_skene_likelihood_does_not_decrease() -> None:
    truth, items, annotators, labels = _planted_crowd(seed=4)
    lls = [
        dawid_skene(items, annotators, labels, n_items=truth.size, num_classes=4, max_iter=i).log_likelihood
        for i in (1, 2, 5, 20)
    ]
    assert all(b >= a - 1e-6 for a, b in itertools.pairwise(lls)), lls


def test_dawid_skene_validates_annotations() -> None:
    with pytest.raises(TBALInputError, match="labels in"):
        dawid_skene(np.array([0]), np.array([0]), np.array([5]), n_items=1, num_classes=3)
    with pytest.raises(TBALInputError, match="one shape"):
        dawid_skene(np.array([0, 1]), np.array([0]), np.array([1]), n_items=2, num_classes=3)
