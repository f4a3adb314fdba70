"""Markdown table of one or more `tbal bench --json` files (mean ± sd over seeds, in %).

Usage: .venv/bin/python bench/table.py FILE.json [more.json ...] [--epsilon 0.05]
(`tbal bench --json` grids, or `tbal run --json` files, whose runs of one configuration are merged).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def summary_row(label: str, runs: list[dict], epsilon: float) -> str:
    coverage = [100 * r["coverage"] for r in runs]
    error = [100 * (r["true_error"] or 0.0) for r in runs]
    sd = statistics.stdev if len(runs) > 1 else (lambda values: 0.0)
    above = sum(e > 100 * epsilon for e in error)
    seconds = statistics.mean(r["wall_time_s"] for r in runs)
    return (
        f"| {label} | {statistics.mean(coverage):.1f} ± {sd(coverage):.1f} "
        f"| {statistics.mean(error):.2f} ± {sd(error):.2f} | {max(error):.2f} | {above} / {len(runs)} "
        f"| {seconds:.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--epsilon", type=float, default=0.05)
    args = parser.parse_args()
    print("| train / confidence / bound | coverage % | true error % | max error % | seeds > ε | time/run s |")
    print("|---|---|---|---|---|---|")
    grid: dict[str, list[dict]] = {}
    for path in args.files:
        payload = json.loads(path.read_text())
        if "grid" in payload:  # tbal bench --json
            for label, runs in payload["grid"].items():
                grid.setdefault(label, []).extend(runs)
        else:  # tbal run --json: runs of one configuration (files of single seeds are merged)
            config = payload["config"]
            parts = (config["train"]["method"], config["confidence"]["name"], config["thresholds"]["bound"])
            label = " / ".join(parts)
            grid.setdefault(label, []).extend(payload["runs"])
    for label, runs in grid.items():
        print(summary_row(label, runs, args.epsilon))


if __name__ == "__main__":
    main()
