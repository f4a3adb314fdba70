"""The walk's settings on many validation draws of one certifying round (tuning seeds only).

A whole run draws its threshold-estimation points (D_th) once, so one run says little about how often a
walk fails on an unlucky draw. This script takes certifying rounds captured by
``bench/certificate_ceiling.py --out DIR`` (the pool's scores, predictions, true labels and stratum), draws
D_th again and again as the loop does (uniformly inside the stratum, as many points as the run had), and
replays the certificate with each setting at the round's δ_k (softmax's family, the common cut). Per round
and setting it prints the mean coverage of the pool over the draws, the share of draws that certify
nothing, the share whose auto-labels are more than ε wrong (a valid setting keeps that near or below δ_k;
beside it, the share whose certified region is, counting its D_th points: the population error that a
Clopper–Pearson bound on D_th speaks of, where the auto-labels are the rest of a finite pool),
and what the setting certifies on the run's own D_th: with δ spent in the final round alone, the whole
run with that setting, since no earlier round depends on the walk.

A setting is NAME:FIELD=VALUE,... of ``thresholds`` fields ("+" between the items of a list), and two
experiments that are not library settings: ``starts=W@Q+W@Q`` replaces the fallback's weights with a share
W of δ at the walk-start position of each top share Q of D_th (two starts: ``starts=0.5@0.3+0.5@0.5``),
and ``grid=Q+Q+...`` (with ``own=F``) picks the start share per draw among the Q by a label-free
simulation, each D_th point wrong with probability F·(1 − its score). ``points=N`` draws N more D_th
points than the run had (negative: fewer). ``targeted=K`` draws as many as the run would have had with K
of its N_v validation points drawn inside the stratum instead of its own k (``loop.targeted_validation``;
the other N_v − K are uniform, a share s of them in the stratum: n_th + (K − k)·(1 − s), s the stratum's
share of the round's pool). ``stratum=Q@C`` replays inside another stratum (share Q, widening factor C;
rounds captured since the fifteenth session: :func:`load_round`). ``--lines`` runs the settings on a few
lines of mistakes.

Usage: .venv/bin/python bench/walk_resample.py DIR/round-s10.npz ... [--draws 400] [--families both]
       [--variant NAME:FIELD=VALUE,FIELD=VALUE ...]
       .venv/bin/python bench/walk_resample.py --synthetic | --lines [--variant ...]
Without --variant: the start shares 0.3 (the default until the fourteenth session), 0.35 (the default
since), 0.45 and 0.5, and the two experiments.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

import tbal.thresholds as thresholds
from tbal.config import TBALConfig, ThresholdConfig, config_from_dict, targeted_count, with_overrides
from tbal.plan import stratum_cut
from tbal.thresholds import PoolContext, estimate_thresholds

SIMULATED = 40
DEFAULT_VARIANTS = (
    "before:walk_start_share=0.3",
    "now:",
    "start0.45:walk_start_share=0.45",
    "start0.5:walk_start_share=0.5",
    "two-starts:starts=0.5@0.3+0.5@0.5",
    "by-simulation:grid=0.2+0.3+0.4+0.5+0.6+0.7",
)


@dataclasses.dataclass(frozen=True)
class Round:
    """A captured certifying round: the stratum's pool points and the run's D_th size and δ_k."""

    scores: np.ndarray
    predicted: np.ndarray
    correct: np.ndarray
    pool_size: int
    n_th: int
    delta: float
    num_classes: int
    targeted: int  # the run's k: validation points drawn inside the stratum (0 if the JSON is missing)
    stratum_share: float  # the stratum's share of the round's pool

    def th_size(self, variant: Variant) -> int:
        """D_th's size for ``variant``: the run's, ``variant.points`` more, and with ``variant.targeted``
        the (K − k)·(1 − s) points that K targeted validation points add inside the stratum."""
        size = self.n_th + variant.points
        if variant.targeted is not None:
            size += round((variant.targeted - self.targeted) * (1.0 - self.stratum_share))
        return min(max(size, 1), self.scores.size)


def run_record(path: Path) -> dict[str, Any] | None:
    """The run's JSON (``run-sN.json``, written by certificate_ceiling.py beside the round), if present."""
    record = path.with_name(path.name.replace("round-", "run-")).with_suffix(".json")
    return json.loads(record.read_text()) if record.exists() else None


def run_config(path: Path) -> TBALConfig | None:
    """The configuration the run recorded beside its round, if its JSON is there."""
    record = run_record(path)
    return config_from_dict(record["config"]) if record is not None else None


def own_draw(path: Path, variant: Variant) -> tuple[float, float]:
    """(coverage, true error) of ``variant`` on the run's own D_th: with δ spent in the final round only,
    what the whole run would have certified with this setting (the rounds before do not depend on it).
    Coverage of the round's pool; of the data less N_v, as ``tbal run`` reports it, when the run's JSON
    (``run-sN.json``, written by certificate_ceiling.py) lies beside the round."""
    z = np.load(path)
    k = int(max(z["th_y"].max(), z["pool_y"].max())) + 1
    correct = z["th_pred"] == z["th_y"]
    with weights_of(variant):
        inside = z["pool_in_stratum"]
        pool = PoolContext(z["pool_scores"][inside], z["pool_pred"][inside])  # for finite_pool
        result = estimate_thresholds(
            z["th_scores"], z["th_pred"], correct, k, variant.config, delta=float(z["delta"]), pool=pool
        )
    labeled = (z["pool_scores"] >= result.thresholds[z["pool_pred"]]) & z["pool_in_stratum"]
    wrong = (z["pool_pred"] != z["pool_y"])[labeled]
    record = run_record(path)
    size = record["runs"][0]["pool_size"] if record is not None else labeled.size
    return float(labeled.sum() / size), float(wrong.mean()) if wrong.size else 0.0


def load_round(path: Path, stratum: tuple[float, float] | None = None) -> Round:
    """The captured round; with ``stratum`` (q, c), inside another stratum instead of the run's: the cut
    that :func:`tbal.plan.stratum_cut` finds with share q and error c·ε on the ranks of the pool that the
    stratum round left (captured since the fifteenth session), applied to the certifying round's pool by
    the same ranks, and D_th as large as the run's k plus the share s' of its uniform points that would
    fall inside (k + (N_v − k)·s'). Approximate in one way: the run's own targeted points, drawn inside its
    stratum, are missing from the pool the new stratum is drawn from."""
    z = np.load(path)
    k = int(max(z["th_y"].max(), z["pool_y"].max())) + 1
    config = run_config(path)
    targeted = targeted_count(config) if config is not None else 0  # the run's k, as the loop counts it
    inside, n_th = z["pool_in_stratum"], len(z["th_scores"])
    if stratum is not None:
        if "stratum_rank" not in z.files or config is None:
            raise SystemExit(f"{path}: stratum= needs a round captured with the stratum round's ranks")
        if config.confidence.name != "softmax":
            # the capture ranks by the round's score, which is the classifier's probability for softmax only
            raise SystemExit(f"{path}: stratum= replays softmax runs only")
        share, factor = stratum
        left = z["stratum_left_rank"]
        cut = stratum_cut(left, share, factor * config.thresholds.epsilon)
        inside = z["stratum_rank"] >= cut
        uniform = config.loop.validation_size - targeted
        n_th = targeted + round(uniform * float(np.mean(left >= cut)))
    return Round(
        scores=z["pool_scores"][inside],
        predicted=z["pool_pred"][inside],
        correct=(z["pool_pred"] == z["pool_y"])[inside],
        pool_size=int(z["pool_scores"].size),
        n_th=n_th,
        delta=float(z["delta"]),
        num_classes=k,
        targeted=targeted,
        stratum_share=float(inside.mean()),
    )


@dataclasses.dataclass(frozen=True)
class Variant:
    """A threshold setting; ``starts`` [(share of δ, top share of D_th), ...]: instead of the fallback's
    weights, these weights at the walk-start positions of those shares (an experiment, patched in)."""

    name: str
    config: ThresholdConfig
    starts: tuple[tuple[float, float], ...] = ()
    # walk_start_share chosen per draw among these, by label-free simulation (see predicted_start_share)
    start_grid: tuple[float, ...] = ()
    own_factor: float = 1.0  # the simulated mistakes' probability: this × (1 − score)
    points: int = 0  # D_th points drawn beyond the run's (negative: fewer), as a larger or smaller k would
    targeted: int | None = None  # D_th as the run would have drawn it with this k (see Round.th_size)
    stratum: tuple[float, float] | None = None  # (q, c): another stratum (see load_round)


def parse_variant(text: str, families: str = "common") -> Variant:
    """NAME:FIELD=VALUE,...[,starts=W@Q+W@Q...] (thresholds fields)."""
    name, _, fields = text.partition(":")
    pairs = dict(item.split("=") for item in fields.split(",") if item)
    starts = tuple(
        (float(w), float(q)) for w, q in (p.split("@") for p in pairs.pop("starts", "").split("+") if p)
    )
    grid = tuple(float(q) for q in pairs.pop("grid", "").split("+") if q)
    factor = float(pairs.pop("own", "1"))
    points = int(pairs.pop("points", "0"))
    targeted = int(pairs["targeted"]) if "targeted" in pairs else None
    pairs.pop("targeted", None)
    q, _, c = pairs.pop("stratum", "").partition("@")
    stratum = (float(q), float(c or 0)) if q else None
    # ``families``: common for softmax, both for Colander, as the loop resolves ``auto``
    # (tbal.config.resolved_thresholds)
    # "+" separates the items of a list value (",", the command line's, separates the fields here)
    listed = {f"thresholds.{k}": v.replace("+", ",") for k, v in pairs.items()}
    overrides = {"thresholds.pooled_families": families} | listed
    config = with_overrides(TBALConfig(), overrides).thresholds
    return Variant(name, config, starts, grid, factor, points, targeted, stratum)


def predicted_start_share(
    scores: np.ndarray,
    predicted: np.ndarray,
    variant: Variant,
    k: int,
    delta: float,
    rng: np.random.Generator,
) -> float:
    """The start share of ``variant.start_grid`` whose walk certifies the most D_th points on average
    when each point is wrong with probability own_factor × (1 − its score): no label is used."""
    p_wrong = np.clip(variant.own_factor * (1.0 - scores), 0.0, 1.0)
    draws = [rng.random(scores.size) >= p_wrong for _ in range(SIMULATED)]
    best, best_mean = variant.start_grid[0], -1.0
    for share in variant.start_grid:
        config = dataclasses.replace(variant.config, walk_start_share=share)
        covered = [
            (
                scores
                >= estimate_thresholds(scores, predicted, ok, k, config, delta=delta).thresholds[predicted]
            ).sum()
            for ok in draws
        ]
        if float(np.mean(covered)) > best_mean:
            best, best_mean = share, float(np.mean(covered))
    return best


def start_weights(starts: tuple[tuple[float, float], ...]) -> Any:
    """A replacement for the fallback's weights: share w of δ at the start position of top share q (q < 0:
    at the fallback's checkpoint -q instead)."""

    def weights(cand: Any, bound: str, epsilon: float, delta: float, *_: Any, **__: Any) -> np.ndarray:
        out = np.zeros(cand.n.shape[0])
        for w, q in starts:
            if q < 0:  # W@-j: the fallback's j-th checkpoint, where 2^j - 1 mistakes could first pass
                need = thresholds._min_points_with_errors(
                    bound, epsilon, w * delta, 2 ** int(-q) - 1, int(cand.n[-1])
                )
                at = int(np.searchsorted(cand.n, need)) if need is not None else out.size
            else:
                at = thresholds._start_index(cand, bound, epsilon, w * delta, q)
            if at < out.size:
                out[at] += w * delta
        return out

    return weights


@contextlib.contextmanager
def weights_of(variant: Variant) -> Iterator[None]:
    """The library's fallback weights, or the variant's ``starts`` patched in for the duration."""
    original = thresholds._fallback_weights
    if variant.starts:
        thresholds._fallback_weights = start_weights(variant.starts)
    try:
        yield
    finally:
        thresholds._fallback_weights = original


def replay(round_: Round, variant: Variant, draws: int, seed: int) -> dict[str, float]:
    with weights_of(variant):
        return _replay(round_, variant, draws, seed)


def _replay(round_: Round, variant: Variant, draws: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    coverage, wrong, region_wrong = np.zeros(draws), np.zeros(draws), np.zeros(draws)
    config = variant.config
    size = round_.th_size(variant)
    for d in range(draws):
        picked = rng.choice(round_.scores.size, size=size, replace=False)
        if variant.start_grid:
            share = predicted_start_share(
                round_.scores[picked],
                round_.predicted[picked],
                variant,
                round_.num_classes,
                round_.delta,
                rng,
            )
            config = dataclasses.replace(variant.config, walk_start_share=share)
        rest = np.ones(round_.scores.size, dtype=bool)
        rest[picked] = False
        result = estimate_thresholds(
            round_.scores[picked],
            round_.predicted[picked],
            round_.correct[picked],
            round_.num_classes,
            config,
            delta=round_.delta,
            pool=PoolContext(round_.scores[rest], round_.predicted[rest]),  # for finite_pool
        )
        labeled = round_.scores >= result.thresholds[round_.predicted]
        # the region's error with its validation points, the population error a Clopper-Pearson bound on
        # D_th speaks of; the auto-labels (the rest) are what the user gets
        region_wrong[d] = (~round_.correct[labeled]).mean() if labeled.any() else 0.0
        labeled[picked] = False  # validation points are not auto-labeled
        coverage[d] = labeled.sum() / round_.pool_size
        wrong[d] = (~round_.correct[labeled]).mean() if labeled.any() else 0.0
    return {
        "coverage": float(coverage.mean()),
        "none": float((coverage == 0).mean()),
        "above_eps": float((wrong > config.epsilon).mean()),
        "region_above_eps": float((region_wrong > config.epsilon).mean()),
    }


def synthetic(variants: list[Variant]) -> None:
    """Each setting on the synthetic population of tests/tbal/test_thresholds.py (1,000 draws of D_th, seed
    7, as bench/simulate_guarantees.py): the share of draws above ε and the coverage, with a D_th that is a
    sample of the whole population (no stratum), where a certificate covers less than its top half."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.tbal.test_thresholds import violation_rates

    cases: list[tuple[str, str, str, int]] = [
        ("common cut", "common", "pooled", 1200),
        ("both families", "both", "pooled", 1200),
        ("both families, small D_th", "both", "pooled", 300),
        ("per-class", "both", "per-class", 1200),
    ]
    for variant in variants:
        for label, families, guarantee, n in cases:
            config = dataclasses.replace(variant.config, pooled_families=families, guarantee=guarantee)  # type: ignore[arg-type]
            with weights_of(variant):
                pooled, per_class, coverage = violation_rates(config, n, seed=7)
            rates = f"above ε: pooled {100 * pooled:.1f} %, a class {100 * per_class:.1f} %"
            print(f"{variant.name}, {label} (D_th {n}): {rates}, coverage {100 * coverage:.1f} %", flush=True)


LINES = ([5, 15, 25], [5, 15, 25, 150], [40, 60, 80, 100], [20, 60, 100, 140, 180], [10, 30, 50, 70])
"""Mistakes (ranks) among 400 points of one class, the rest right: a few early mistakes, a clean tail."""


def lines(variants: list[Variant]) -> None:
    """How many of 400 points each setting certifies on the lines of tests/tbal/test_thresholds.py
    (``certified_on_a_line``) with the mistakes of :data:`LINES`: where the fallback's far checkpoints
    rescue a walk whose starts fail."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.tbal.test_thresholds import certified_on_a_line

    for variant in variants:
        with weights_of(variant):
            counts = [int(certified_on_a_line(400, list(m), variant.config).n_points[0]) for m in LINES]
        print(f"{variant.name}: " + ", ".join(f"{m}: {c}" for m, c in zip(LINES, counts, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("rounds", nargs="*", type=Path, help="round-sN.npz files (none with --synthetic)")
    parser.add_argument("--draws", type=int, default=400)
    parser.add_argument("--variant", action="append", default=[], help="NAME:FIELD=VALUE,... (thresholds.)")
    parser.add_argument("--families", default="common", help="both for a Colander round (the loop's auto)")
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="instead: the 1,000-draw simulations of simulate_guarantees.py",
    )
    parser.add_argument("--lines", action="store_true", help="instead: the settings on a few mistake lines")
    args = parser.parse_args()
    variants = [parse_variant(v, args.families) for v in (args.variant or DEFAULT_VARIANTS)]
    if args.synthetic:
        synthetic(variants)
        return
    if args.lines:
        lines(variants)
        return
    if not args.rounds:
        parser.error("give the captured rounds (round-sN.npz) to replay, or --synthetic")
    totals: dict[str, list[float]] = {v.name: [] for v in variants}
    empties: dict[str, list[float]] = {v.name: [] for v in variants}
    owns: dict[str, list[float]] = {v.name: [] for v in variants}
    for path in args.rounds:
        round_ = load_round(path)
        line = [f"{path.parent.name}/{path.stem} (D_th {round_.n_th}, stratum {round_.scores.size}):"]
        for variant in variants:
            this = load_round(path, variant.stratum) if variant.stratum else round_
            r = replay(this, variant, args.draws, seed=0)  # the same draws for every setting
            totals[variant.name].append(r["coverage"])
            empties[variant.name].append(r["none"])
            region = f"the region with its D_th points {100 * r['region_above_eps']:.1f} %"
            shares = f"none {100 * r['none']:.0f} %, > ε {100 * r['above_eps']:.1f} % ({region})"
            if variant.points or variant.targeted is not None or variant.stratum:
                ran = "no own draw of this size"  # the run drew its D_th with its own k
            else:
                own, own_error = own_draw(path, variant)
                owns[variant.name].append(own)
                ran = f"the run's own draw {100 * own:.1f} % at {100 * own_error:.2f} %"
            size = f"D_th {this.th_size(variant)}, stratum {this.scores.size}"
            line.append(f"  {variant.name}: {100 * r['coverage']:.1f} % ({shares}; {size}); {ran}")
        print("\n".join(line), flush=True)
    print("mean over rounds: " + summary(totals))
    print("draws certifying nothing: " + summary(empties))
    print("the runs' own draws: " + summary(owns))


def summary(values: dict[str, list[float]]) -> str:
    """Each setting's mean over the rounds, in %."""
    return ", ".join(f"{name} {100 * np.mean(v):.1f} %" for name, v in values.items() if v)


if __name__ == "__main__":
    main()
