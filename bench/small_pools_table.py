"""The table of bench/small_pools.sh: per case and walk, each seed's coverage and true error, their means,
and the runs above ε (BENCHMARKS.md, "Issue 11, twenty-fifth session").

Usage: .venv/bin/python bench/small_pools_table.py [DIR (default bench/results/small-pools)]
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

EPSILON = 0.05
WALKS = {
    ("", "false"): "population bound (Clopper–Pearson)",
    ("old-", "true"): "`finite_pool`, start placed by the binomial bound (twenty-fourth session)",
    ("", "true"): "`finite_pool`, start placed by the rest's test (the default)",
}


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("bench/results/small-pools")
    runs: dict[tuple[str, str, str], dict[int, tuple[float, float]]] = defaultdict(dict)
    for path in sorted(folder.glob("*.json")):
        name = re.fullmatch(r"(old-)?(.+)-(true|false)-s(\d+)\.json", path.name)
        if name is None:
            continue
        old, case, finite, seed = name.groups()
        [run] = json.loads(path.read_text())["runs"]
        error = run["true_error"] if run["true_error"] is not None else 0.0
        runs[(case, old or "", finite)][int(seed)] = (100 * run["coverage"], 100 * error)
    print("| case | walk | seeds | coverage % per seed | mean | true error % per seed | runs above ε |")
    print("|---|---|---|---|---|---|---|")
    for case in sorted({c for c, _, _ in runs}):
        for (old, finite), walk in WALKS.items():
            per_seed = runs.get((case, old, finite))
            if not per_seed:
                continue
            seeds = sorted(per_seed)
            cover = [per_seed[s][0] for s in seeds]
            errors = [per_seed[s][1] for s in seeds]
            above = sum(e > 100 * EPSILON for e in errors)
            print(
                f"| {case} | {walk} | {seeds[0]}–{seeds[-1]} | {' / '.join(f'{c:.1f}' for c in cover)} "
                f"| {sum(cover) / len(cover):.1f} | {' / '.join(f'{e:.2f}' for e in errors)} | {above} |"
            )


if __name__ == "__main__":
    main()
