"""The simulated population of the guarantee's 1,000-draw tests (tests/tbal/test_thresholds.py for one
round, tests/tbal/test_plan.py for whole runs): scores, mistakes and the true error of any thresholds.

Population: K = 4 predicted classes, equally likely; a latent u ~ U(0, 1); score s = b_k·u (class
score scales differ, so both pooled families get used); P(wrong | u, k) = a_k (1 − u)², decreasing in
the score. For a class threshold t the region is u ≥ q = t / b_k, with
    mass (1 − q)/K,   mistakes a_k (1 − q)³ / (3K),
so the true per-class error is a_k (1 − q)² / 3 and the pooled error is Σ mistakes / Σ mass.
"""

from __future__ import annotations

import numpy as np

A_K = np.array([0.2, 0.4, 0.6, 0.8])
B_K = np.array([1.0, 0.9, 0.8, 0.7])


def draw_population(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` points of the population: (predicted class, wrong, score), drawn in that order (class, u,
    mistake), so that a seeded simulation draws the same points wherever it calls this."""
    yhat = rng.integers(0, len(A_K), n)
    u = rng.random(n)
    wrong = rng.random(n) < A_K[yhat] * (1 - u) ** 2
    return yhat, wrong, B_K[yhat] * u


def true_errors(thresholds: np.ndarray) -> tuple[float, np.ndarray]:
    """The pooled true error and each class's true error of the region above ``thresholds`` (K,)."""
    q = np.clip(np.where(np.isfinite(thresholds), thresholds / B_K, 1.0), 0.0, 1.0)
    mass = (1 - q) / len(A_K)
    mistakes = A_K * (1 - q) ** 3 / (3 * len(A_K))
    pooled = mistakes.sum() / mass.sum() if mass.sum() > 0 else 0.0
    per_class = np.divide(mistakes, mass, out=np.zeros_like(mass), where=mass > 0)
    return float(pooled), per_class
