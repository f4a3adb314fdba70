"""Query strategies on hand-made probability matrices with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from tbal.config import QUERY_NAMES, ConfigError
from tbal.errors import TBALInputError
from tbal.query import select_queries

# Rows built so that every strategy has a different known order (dyadic values: exact margins).
#            p1        p2        p3          margin    entropy (nats)  p1
PROBS = np.array(
    [
        [0.875, 0.0625, 0.0625],  # 0: 0.8125   0.463   0.875
        [0.5, 0.46875, 0.03125],  # 1: 0.03125  0.810   0.5
        [0.375, 0.3125, 0.3125],  # 2: 0.0625   1.095   0.375
        [0.625, 0.1875, 0.1875],  # 3: 0.4375   0.922   0.625
        [0.34375, 0.328125, 0.328125],  # 4: 0.015625  1.099   0.34375
        [1.0, 0.0, 0.0],  # 5: 1.0      0.0     1.0
        [0.53125, 0.46875, 0.0],  # 6: 0.0625   0.692   0.53125
    ]
)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_margin_takes_lowest_p1_minus_p2_with_ties_by_index() -> None:
    # margins: 4 < 1 < 2 = 6 (exact tie -> lower index first) < 3 < 0 < 5
    np.testing.assert_array_equal(select_queries("margin", PROBS, 4, rng()), [4, 1, 2, 6])
    np.testing.assert_array_equal(select_queries("margin", PROBS, 7, rng()), [4, 1, 2, 6, 3, 0, 5])


def test_entropy_takes_highest_entropy() -> None:
    p = PROBS
    entropy = -(p * np.log(np.where(p > 0, p, 1))).sum(axis=1)
    assert entropy[5] == 0.0  # 0·log 0 = 0
    np.testing.assert_array_equal(select_queries("entropy", PROBS, 3, rng()), [4, 2, 3])


def test_least_confidence_takes_lowest_top_probability() -> None:
    np.testing.assert_array_equal(select_queries("least-confidence", PROBS, 3, rng()), [4, 2, 1])


def test_ranked_strategies_ignore_the_generator() -> None:
    for name in ("margin", "entropy", "least-confidence"):
        a = select_queries(name, PROBS, 3, rng(1))
        b = select_queries(name, PROBS, 3, rng(2))
        np.testing.assert_array_equal(a, b)


def test_margin_random_draws_b_of_the_2b_lowest_margins() -> None:
    n, b = 200, 10
    generator = np.random.default_rng(11)
    probs = generator.dirichlet(np.ones(4), size=n)
    top2 = np.sort(probs, axis=1)[:, -2:]
    lowest_2b = set(np.argsort(top2[:, 1] - top2[:, 0], kind="stable")[: 2 * b].tolist())
    picks = [tuple(select_queries("margin-random", probs, b, rng(seed)).tolist()) for seed in range(20)]
    for pick in picks:
        assert len(pick) == b and len(set(pick)) == b
        assert set(pick) <= lowest_2b
    assert len({frozenset(p) for p in picks}) > 10, "the draw should vary with the generator"
    assert set().union(*map(set, picks)) == lowest_2b  # over 20 draws every shortlisted point shows up


def test_random_is_uniform_distinct_and_seeded() -> None:
    probs = np.full((50, 2), 0.5)
    a = select_queries("random", probs, 10, rng(3))
    np.testing.assert_array_equal(a, select_queries("random", probs, 10, rng(3)))
    assert len(set(a.tolist())) == 10 and a.min() >= 0 and a.max() < 50
    assert not np.array_equal(a, select_queries("random", probs, 10, rng(4)))
    counts = np.zeros(50)
    generator = rng(5)
    for _ in range(2000):
        counts[select_queries("random", probs, 10, generator)] += 1
    expected = 2000 * 10 / 50  # 400 per point; sd ≈ sqrt(400·0.8) ≈ 18
    assert np.abs(counts - expected).max() < 5 * 18


@pytest.mark.parametrize("name", QUERY_NAMES)
def test_seeded_reproducibility_and_batch_larger_than_pool(name: str) -> None:
    probs = np.random.default_rng(6).dirichlet(np.ones(3), size=30)
    a = select_queries(name, probs, 8, rng(9))
    np.testing.assert_array_equal(a, select_queries(name, probs, 8, rng(9)))
    assert a.dtype == np.int64 and len(set(a.tolist())) == 8
    everything = select_queries(name, probs, 100, rng(9))
    assert sorted(everything.tolist()) == list(range(30))
    assert select_queries(name, probs, 0, rng(9)).shape == (0,)
    assert select_queries(name, probs[:0], 5, rng(9)).shape == (0,)


def test_single_class_margin_is_the_top_probability() -> None:
    probs = np.ones((3, 1))
    assert sorted(select_queries("margin", probs, 2, rng()).tolist()) == [0, 1]


def test_unknown_strategy_lists_the_valid_names() -> None:
    with pytest.raises(ConfigError, match="unknown query strategy 'bald'") as info:
        select_queries("bald", PROBS, 2, rng())
    for name in QUERY_NAMES:
        assert name in str(info.value)


@pytest.mark.parametrize(
    ("probs", "batch", "generator", "match"),
    [
        (np.array([0.5, 0.5]), 1, np.random.default_rng(0), r"probs of shape \(n, K\)"),
        (np.array([[0.5, np.nan]]), 1, np.random.default_rng(0), "finite, non-negative"),
        (np.array([[1.5, -0.5]]), 1, np.random.default_rng(0), "finite, non-negative"),
        (np.array([[0.5, 0.2]]), 1, np.random.default_rng(0), "summing to 1"),
        (np.array([[0.5, 0.5]]), -1, np.random.default_rng(0), "batch"),
        (np.array([[0.5, 0.5]]), 1.5, np.random.default_rng(0), "batch"),
        (np.array([[0.5, 0.5]]), 1, 0, "numpy Generator"),
    ],
)
def test_invalid_inputs_raise(probs, batch, generator, match) -> None:
    with pytest.raises(TBALInputError, match=match):
        select_queries("margin", probs, batch, generator)
