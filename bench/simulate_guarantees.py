"""Print the failure rates behind BENCHMARKS.md's "The guarantee by simulation" table: the 1,000-draw
simulations of tests/tbal/test_thresholds.py and tests/tbal/test_plan.py (the tests assert the bounds;
this prints the rates and coverages they see). Takes a few minutes.

Usage: .venv/bin/python bench/simulate_guarantees.py [NAME-SUBSTRING]  (e.g. "common cut": that walk only;
"finite": the finite-population rows only, after the walks)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tbal.config import ThresholdConfig
from tests.tbal.test_plan import _family_wise_failure_rate, _long_run_config
from tests.tbal.test_thresholds import dataset_violation_rate, finite_pool_rates, violation_rates


def first(**changes: Any) -> ThresholdConfig:
    """A walk that starts where a pass is possible at all (``walk_start_share`` 0, the default until the
    seventh session of issue 11)."""
    return ThresholdConfig(walk_start_share=0.0, **changes)


def late(**changes: Any) -> ThresholdConfig:
    """A walk that starts within the top 30 % of D_th (``walk_start_share`` 0.3, the default from the
    seventh to the fourteenth session of issue 11)."""
    return ThresholdConfig(walk_start_share=0.3, **changes)


def later(**changes: Any) -> ThresholdConfig:
    """A walk that starts within the top 35 % of D_th (``walk_start_share`` 0.35, the default since the
    fourteenth session)."""
    return ThresholdConfig(walk_start_share=0.35, **changes)


WALKS = [
    ("plain fixed sequence, pooled", first(fallback_share=0.0), 1200),
    ("fallback walk η 0.3, pooled", first(fallback_share=0.3), 1200),
    (
        "fallback walk η 0.3, per-class",
        first(guarantee="per-class", fallback_share=0.3),
        1200,
    ),
    ("common cut alone at δ (softmax's family)", first(pooled_families="common"), 1200),
    (
        "common cut alone, walk_step 0.1 (not the default)",
        first(pooled_families="common", walk_step=0.1),
        1200,
    ),
    (
        "common cut alone, walk_step 0.2 (not the default)",
        first(pooled_families="common", walk_step=0.2),
        1200,
    ),
    (
        "fallback η 0.5, 4 restarts, pooled, small D_th",
        first(epsilon=0.1, delta=0.2, fallback_share=0.5, fallback_checkpoints=4),
        300,
    ),
    ("start within the top 30 %, common cut", late(pooled_families="common"), 1200),
    ("start within the top 30 %, both families at δ/2", late(pooled_families="both"), 1200),
    ("start within the top 30 %, both families, small D_th", late(pooled_families="both"), 300),
    ("start within the top 30 %, per-class", late(guarantee="per-class"), 1200),
    ("start within the top 35 %, common cut", later(pooled_families="common"), 1200),
    ("start within the top 35 %, both families at δ/2", later(pooled_families="both"), 1200),
    ("start within the top 35 %, both families, small D_th", later(pooled_families="both"), 300),
    ("start within the top 35 %, per-class", later(guarantee="per-class"), 1200),
]


def main() -> None:
    only = sys.argv[1] if len(sys.argv) > 1 else None  # a substring of the walks' names: print those only
    for name, config, n in WALKS:
        if only is not None and only not in name:
            continue
        pooled, per_class, coverage = violation_rates(config, n, seed=7)
        rates = f"pooled {100 * pooled:.1f} %, a class {100 * per_class:.1f} %"
        print(f"{name}: {rates}, coverage {100 * coverage:.1f} %")
    if only is not None and "finite" not in only:
        return
    for total, n_th in ((8000, 1200), (4000, 2000), (3000, 1200), (1000, 300), (600, 200)):
        # a finite population, D_th a uniform sample of it: what the auto-labels (the rest) hold
        for finite in (False, True):
            config = later(pooled_families="common", finite_pool=finite)
            rate, coverage = finite_pool_rates(config, total, n_th, 1000, seed=7)
            label = (
                f"finite population of {total}, D_th {n_th}, {'finite_pool' if finite else 'Clopper–Pearson'}"
            )
            print(f"{label}: auto-labels above ε {100 * rate:.1f} %, rest covered {100 * coverage:.1f} %")
    if only is not None:
        return
    for guarantee in ("dataset", "pooled"):
        config = ThresholdConfig(guarantee=guarantee, epsilon=0.05, delta=0.1)  # type: ignore[arg-type]
        rate, coverage = dataset_violation_rate(config, n_th=600, n_pool=3000, humans=1000, seed=9)
        print(f"{guarantee} (labeled-set error): {100 * rate:.1f} % above ε, coverage {100 * coverage:.1f} %")
    for guarantee, split, schedule in (
        ("pooled", True, "uniform"),
        ("per-class", True, "uniform"),
        ("pooled", True, "final"),
        ("pooled", False, "uniform"),
    ):
        rate, _ = _family_wise_failure_rate(_long_run_config(guarantee, split, schedule), seed=21)
        label = f"8 rounds planned as 3, {guarantee}, {schedule if split else 'every round at the whole δ'}"
        print(f"{label}: family-wise {100 * rate:.1f} %")


if __name__ == "__main__":
    main()
