"""Query strategies: which pool points go to humans next.

``probs`` (n, K) are the classifier's class probabilities (the raw softmax in the reference runs). With
p₁ ≥ p₂ the two largest entries of a row:

- ``random``: b points uniformly at random.
- ``margin``: the b lowest margins p₁ − p₂ (uncertainty sampling).
- ``margin-random``: the 2·b lowest margins, then b of them uniformly at random — the default of
  Vishwakarma et al., "Promises and Pitfalls of Threshold-based Auto-labeling" (NeurIPS 2023) and
  "Pearls from Pebbles" (NeurIPS 2024).
- ``entropy``: the b highest entropies −Σ_k p_k log p_k (0·log 0 = 0).
- ``least-confidence``: the b lowest p₁.

Ranked strategies return the most informative point first and break ties by the lower row index, so
their answer does not depend on the generator; ``random`` and ``margin-random`` draw from the
generator passed in.
"""

from __future__ import annotations

import numpy as np

from tbal.config import QUERY_NAMES, ConfigError
from tbal.errors import TBALInputError

_ROW_SUM_TOLERANCE = 1e-3


def select_queries(strategy: str, probs: np.ndarray, batch: int, rng: np.random.Generator) -> np.ndarray:
    """Indices (into probs' rows) of ``min(batch, n)`` distinct points to query, by strategy: random,
    margin (lowest p1 − p2), margin-random (2·b lowest-margin, b of them at random), entropy (highest),
    least-confidence (lowest p1). Raises ConfigError listing the valid names for an unknown strategy.

    probs: (n, K) rows of probabilities (non-negative, summing to 1 within 1e-3). Returns (m,) int64,
    m = min(batch, n).
    """
    if strategy not in QUERY_NAMES:
        raise ConfigError(f"unknown query strategy {strategy!r}; valid strategies: {', '.join(QUERY_NAMES)}")
    p = np.asarray(probs)
    if p.ndim != 2 or p.shape[1] == 0:
        raise TBALInputError(f"expected probs of shape (n, K) with K ≥ 1, got shape {p.shape}")
    if p.size and not np.issubdtype(p.dtype, np.number):
        raise TBALInputError(f"expected real probs, got dtype {p.dtype}")
    p = p.astype(np.float64)
    if not np.isfinite(p).all() or (p < 0).any():
        raise TBALInputError("expected finite, non-negative probs, got NaN, infinite or negative entries")
    if p.shape[0] and np.abs(p.sum(axis=1) - 1.0).max() > _ROW_SUM_TOLERANCE:
        raise TBALInputError(
            f"expected probs rows summing to 1, got row sums in [{p.sum(axis=1).min():.4g}, "
            f"{p.sum(axis=1).max():.4g}]"
        )
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 0:
        raise TBALInputError(f"expected batch to be a non-negative integer, got {batch!r}")
    if not isinstance(rng, np.random.Generator):
        raise TBALInputError(f"expected rng to be a numpy Generator, got {type(rng).__name__}")
    return _select(strategy, p, int(batch), rng)


MODEL_FREE_QUERIES: tuple[str, ...] = ("random",)
"""The strategies that read nothing of the classifier's: a round that queries with one of them and
neither certifies nor fixes a stratum need not score its pool (:func:`tbal.loop.run_round`)."""


def random_queries(n: int, batch: int, rng: np.random.Generator) -> np.ndarray:
    """``random`` without probabilities: min(batch, n) distinct rows of n, the draw that
    :func:`select_queries` makes for it from the same generator."""
    return rng.permutation(n)[: min(batch, n)].astype(np.int64)


def _select(strategy: str, p: np.ndarray, batch: int, rng: np.random.Generator) -> np.ndarray:
    n = p.shape[0]
    m = min(batch, n)
    if strategy == "random":
        return random_queries(n, batch, rng)
    if strategy == "margin":
        return _lowest(_margin(p), m)
    if strategy == "margin-random":
        shortlist = _lowest(_margin(p), min(2 * batch, n))
        return rng.permutation(shortlist)[:m].astype(np.int64)
    if strategy == "entropy":
        return _lowest(-_entropy(p), m)
    return _lowest(p.max(axis=1), m)  # least-confidence: lowest p₁ first


def _lowest(key: np.ndarray, m: int) -> np.ndarray:
    """The m rows with the smallest key, smallest first, ties by the lower row index."""
    return np.argsort(key, kind="stable")[:m].astype(np.int64)


def _margin(p: np.ndarray) -> np.ndarray:
    """p₁ − p₂ per row, (n,); p₂ = 0 when K = 1."""
    if p.shape[1] == 1:
        return p[:, 0].copy()
    top2 = np.sort(p, axis=1)[:, -2:]  # (n, 2): p₂, p₁
    return top2[:, 1] - top2[:, 0]


def _entropy(p: np.ndarray) -> np.ndarray:
    """−Σ_k p_k log p_k per row, (n,), with 0·log 0 = 0."""
    logs = np.log(np.where(p > 0, p, 1.0))
    return -(p * logs).sum(axis=1)
