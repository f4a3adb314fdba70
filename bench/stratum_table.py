"""The stratum's coverage table (BENCHMARKS.md, "The stratum in the loop") from bench/coverage.sh's JSON.

Runs made before the loop's pool size left out the stratum's later validation points (commit after
4207039) divided by N_v − k fewer points; this recomputes every run's coverage over the same pool, the
working rows less all of N_v, so that runs with and without the stratum compare.

Usage: .venv/bin/python bench/stratum_table.py bench/results/coverage/s11-*.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def corrected(path: Path) -> tuple[str, int, float, float | None]:
    """(case, seed, coverage over the working rows less all of N_v, true error) of one run."""
    data = json.loads(path.read_text())
    run, loop = data["runs"][0], data["config"]["loop"]
    rows = loop["pool_size"] or _rows(data["data"])
    pool = min(rows, _rows(data["data"])) - int(loop["validation_size"])
    case = path.stem.rsplit("-s", 1)[0]
    return case, int(run["seed"]), run["auto_labeled"] / pool, run["true_error"]


def _rows(data_path: str) -> int:
    """Points in a data file (its ``y`` or ``y_train``), the run's working rows without a pool size."""
    with np.load(data_path) as arrays:
        key = "y" if "y" in arrays else "y_train"
        return int(arrays[key].shape[0])


def main() -> None:
    rows: dict[str, list[tuple[int, float, float | None]]] = defaultdict(list)
    for name in sys.argv[1:]:
        case, seed, coverage, error = corrected(Path(name))
        rows[case].append((seed, coverage, error))
    for case, runs in sorted(rows.items()):
        runs.sort()
        cells = " / ".join(f"{100 * c:.1f}" for _, c, _ in runs)
        errors = [e for _, _, e in runs if e is not None]
        worst = f"{100 * max(errors):.2f} %" if errors else "-"
        mean = 100 * np.mean([c for _, c, _ in runs])
        seeds = ",".join(str(s) for s, _, _ in runs)
        print(f"| {case} | {seeds} | {cells} | {mean:.1f} % | {worst} |")


if __name__ == "__main__":
    main()
