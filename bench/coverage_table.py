"""Markdown table of the coverage benchmarks (bench/coverage.sh): one line per case, the runs of a case
being the files ``<case>-s<seed>.json``; coverage and true error per seed and mean ± sd, in %. With
``--detail``, one line per run instead: its last round's bound on D_th, the D_th points of each pooled
family, the classifier's accuracy on the pool, and the run's wall time. With ``--against CASE``, each
other case paired with CASE on the seeds both ran: its mean coverage and CASE's there, the mean difference
± its standard error, in how many seeds it was higher / lower, its runs with nothing certified and its runs
above ε, and its median wall time.

Usage: .venv/bin/python bench/coverage_table.py bench/results/coverage/*.json [--epsilon 0.05]
       [--detail | --against CASE]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path


def case_of(path: Path) -> tuple[str, int]:
    match = re.fullmatch(r"(.+)-s(\d+)", path.stem)
    if match is None:
        raise SystemExit(f"{path}: expected a name <case>-s<seed>.json")
    return match.group(1), int(match.group(2))


def row(case: str, runs: list[tuple[int, dict]], epsilon: float) -> str:
    runs = sorted(runs, key=lambda pair: pair[0])
    coverage = [100 * r["coverage"] for _, r in runs]
    errors = [r["true_error"] for _, r in runs]
    sd = statistics.stdev(coverage) if len(coverage) > 1 else 0.0
    per_seed = " / ".join(f"{c:.1f}" for c in coverage)
    per_error = " / ".join("–" if e is None else f"{100 * e:.2f}" for e in errors)
    above = sum(e is not None and e > epsilon for e in errors)
    seeds = ",".join(str(s) for s, _ in runs)
    whole = " / ".join(f"{100 * labeled_set_error(r):.2f}" for _, r in runs)
    return (
        f"| {case} | {seeds} | {per_seed} | {statistics.mean(coverage):.1f} ± {sd:.1f} | {per_error} "
        f"| {above} / {len(runs)} | {whole} |"
    )


def labeled_set_error(run: dict) -> float:
    """Error of the whole labeled set, human labels taken as correct: mistakes / (auto + humans)."""
    humans = run["rounds"][-1]["humans_used"] if run["rounds"] else 0
    auto = run["auto_labeled"]
    return (run["true_error"] or 0.0) * auto / (auto + humans) if auto + humans else 0.0


def detail(case: str, seed: int, run: dict) -> str:
    """One run: the last round's pooled bound and D_th points, classifier accuracy on the pool, wall time."""
    last = run["rounds"][-1] if run["rounds"] else {}
    bound = last.get("pooled_error_bound")
    accuracy = last.get("classifier_accuracy_pool")
    points = " + ".join(str(n) for n in last.get("threshold_points") or [])
    return (
        f"| {case} | {seed} | {'–' if bound is None else f'{100 * bound:.2f}'} | {points or '–'} "
        f"| {'–' if accuracy is None else f'{100 * accuracy:.1f}'} | {run['wall_time_s']:,.0f} |"
    )


def paired(case: str, runs: list[tuple[int, dict]], base: dict[int, dict], epsilon: float) -> str:
    """``case`` against the base case on the seeds both ran (coverage in points)."""
    both = sorted((seed, run) for seed, run in runs if seed in base)
    if not both:
        return f"| {case} | 0 | – | – | – | – | – | – | – |"
    mine = [100 * run["coverage"] for _, run in both]
    theirs = [100 * base[seed]["coverage"] for seed, _ in both]
    diff = [a - b for a, b in zip(mine, theirs, strict=True)]
    se = statistics.stdev(diff) / len(diff) ** 0.5 if len(diff) > 1 else 0.0
    above = sum((run["true_error"] or 0.0) > epsilon for _, run in both)
    time = statistics.median(run["wall_time_s"] for _, run in both)
    higher, lower = sum(d > 0 for d in diff), sum(d < 0 for d in diff)
    return (
        f"| {case} | {len(both)} | {statistics.mean(mine):.1f} | {statistics.mean(theirs):.1f} "
        f"| {statistics.mean(diff):+.2f} ± {se:.2f} | {higher} / {lower} "
        f"| {sum(c == 0 for c in mine)} | {above} | {time:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--epsilon", type=float, default=0.05)
    parser.add_argument("--detail", action="store_true", help="one line per run: bound, D_th, accuracy, time")
    parser.add_argument("--against", metavar="CASE", help="pair every other case with CASE, seed by seed")
    args = parser.parse_args()
    cases: dict[str, list[tuple[int, dict]]] = defaultdict(list)
    for path in args.files:
        case, seed = case_of(path)
        cases[case].extend((seed, run) for run in json.loads(path.read_text())["runs"])
    if args.detail:
        print("| case | seed | bound on D_th % | D_th points | classifier accuracy on the pool % | run, s |")
        print("|---|---|---|---|---|---|")
        for case in sorted(cases):
            for seed, run in sorted(cases[case], key=lambda pair: pair[0]):
                print(detail(case, seed, run))
        return
    if args.against is not None:
        if args.against not in cases:
            raise SystemExit(f"--against {args.against}: no such case among the files")
        base = dict(cases[args.against])
        print(
            f"| case | seeds paired | coverage % | {args.against}'s % | difference, points | higher / lower "
            "| nothing certified | above ε | median s a run |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for case in sorted(cases):
            print(paired(case, cases[case], base, args.epsilon))
        return
    print(
        "| case | seeds | coverage % per seed | coverage % | auto-label error % per seed | seeds > ε "
        "| labeled-set error % per seed |"
    )
    print("|---|---|---|---|---|---|---|")
    for case in sorted(cases):
        print(row(case, cases[case], args.epsilon))


if __name__ == "__main__":
    main()
