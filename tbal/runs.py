"""Running a configuration over several seeds and formatting the results for people (command, benchmarks)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from tbal.config import TBALConfig
from tbal.data import Dataset
from tbal.loop import RoundRecord, RunResult, run_tbal

SeedRoundCallback = Callable[[int, RoundRecord], None]


def run_seeds(
    dataset: Dataset,
    config: TBALConfig,
    seeds: Sequence[int],
    *,
    on_round: SeedRoundCallback | None = None,
) -> list[RunResult]:
    """One :func:`run_tbal` per seed, in order."""
    results = []
    for seed in seeds:
        callback = None if on_round is None else (lambda record, s=seed: on_round(s, record))
        results.append(run_tbal(dataset, config, seed=seed, on_round=callback))
    return results


def format_round_line(seed: int, record: RoundRecord) -> str:
    """One progress line per round."""
    error = "   -  " if record.true_error_total is None else f"{100 * record.true_error_total:5.2f}%"
    bound = "-" if record.pooled_error_bound is None else f"{100 * record.pooled_error_bound:.2f}%"
    seconds = sum(record.timings.values())
    return (
        f"seed {seed} round {record.round:2d}: humans {record.humans_used:5d}  "
        f"auto +{record.auto_labeled_round:5d} = {record.auto_labeled_total:6d}  "
        f"coverage {100 * record.coverage:5.1f}%  true error {error}  bound {bound}  "
        f"val left {record.validation_remaining:4d}  {seconds:5.1f}s"
    )


def summarize(results: Sequence[RunResult], epsilon: float) -> dict[str, float | int]:
    """Mean and sd over seeds of coverage and true error; how many seeds exceeded ε; mean wall time."""
    coverage = np.array([r.coverage for r in results], dtype=np.float64)
    # A run that auto-labeled nothing has no error; count it as 0 (it made no mistake).
    error = np.array([r.true_error or 0.0 for r in results], dtype=np.float64)
    return {
        "seeds": len(results),
        "coverage_mean": float(coverage.mean()),
        "coverage_sd": float(coverage.std(ddof=1)) if len(results) > 1 else 0.0,
        "error_mean": float(error.mean()),
        "error_sd": float(error.std(ddof=1)) if len(results) > 1 else 0.0,
        "error_max": float(error.max()),
        "seeds_above_epsilon": int(np.sum(error > epsilon)),
        "humans_used": float(np.mean([r.rounds[-1].humans_used for r in results])),
        "wall_time_s": float(np.mean([r.wall_time_s for r in results])),
    }


def format_summary_table(rows: Sequence[tuple[str, Sequence[RunResult]]], epsilon: float) -> str:
    """A markdown table: one line per configuration, mean ± sd over seeds (in %)."""
    lines = [
        "| train / confidence / bound | coverage % | true error % | max error % | seeds > ε "
        "| humans | time/run s |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, results in rows:
        s = summarize(results, epsilon)
        lines.append(
            f"| {label} | {100 * s['coverage_mean']:.1f} ± {100 * s['coverage_sd']:.1f} "
            f"| {100 * s['error_mean']:.2f} ± {100 * s['error_sd']:.2f} | {100 * s['error_max']:.2f} "
            f"| {s['seeds_above_epsilon']} / {s['seeds']} | {s['humans_used']:.0f} | {s['wall_time_s']:.0f} |"
        )
    return "\n".join(lines)
