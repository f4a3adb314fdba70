"""What stratum share the classifier's own expected error would pick (BENCHMARKS.md, "The stratum in the
loop"; how ``loop.stratum_error_factor`` c = 2 was chosen, tuning seeds only).

Runs the library's loop on an image file with ``mnist-paper`` and a stratum (300 of 500 targeted, share
0.6), and when the round before the certifying one fixes the stratum, prints for c = 1, 1.5, 2, 3, 4 the
largest top share of the pool left whose mean of 1 − p(ŷ) stays ≤ c·ε: the share the widening rule would
give. Then the run's coverage.

Usage: .venv/bin/python bench/stratum_share.py /tmp/hard_mnist.npz 10
"""

from __future__ import annotations

import sys

import numpy as np
import torch

import tbal.loop as loop
from tbal.config import preset, with_overrides
from tbal.data import load_dataset

EPSILON = 0.05
FACTORS = (1.0, 1.5, 2.0, 3.0, 4.0)


def self_shares(probs: np.ndarray) -> list[tuple[float, float]]:
    """(c, the largest top share whose mean of 1 − p is ≤ c·ε) for each factor c."""
    ranked = np.sort(probs)[::-1]
    expected_error = np.cumsum(1.0 - ranked) / np.arange(1, ranked.size + 1)
    return [
        (c, float(np.searchsorted(expected_error, c * EPSILON, side="right") / ranked.size)) for c in FACTORS
    ]


def main() -> None:
    path, seed = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(1)
    real_cut = loop.stratum_cut

    def reporting_cut(probs: np.ndarray, share: float, error: float = 0.0) -> float:
        shares = ", ".join(f"c {c:g}: {100 * q:.1f} %" for c, q in self_shares(probs))
        print(f"{path} seed {seed}: pool left {probs.size}; self-estimated shares {shares}", flush=True)
        return real_cut(probs, share, error)

    loop.stratum_cut = reporting_cut  # type: ignore[assignment]
    config = with_overrides(
        preset("mnist-paper"), {"loop.stratum_share": 0.6, "loop.stratum_error_factor": 0}
    )
    result = loop.run_tbal(load_dataset(path), config, seed=seed)
    print(f"{path} seed {seed}: coverage {100 * result.coverage:.1f} %, true error {result.true_error}")


if __name__ == "__main__":
    main()
