"""Query strategies: which pool points go to humans next.

CONTRACT (stub, to be implemented): keep these names and signatures.
"""

from __future__ import annotations

import numpy as np


def select_queries(strategy: str, probs: np.ndarray, batch: int, rng: np.random.Generator) -> np.ndarray:
    """Indices (into probs' rows) of ``min(batch, n)`` distinct points to query, by strategy: random,
    margin (lowest p1 − p2), margin-random (2·b lowest-margin, b of them at random), entropy (highest),
    least-confidence (lowest p1). Raises ConfigError listing the valid names for an unknown strategy."""
    raise NotImplementedError
