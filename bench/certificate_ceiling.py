"""How far a valid certificate can reach with the defaults (BENCHMARKS.md, "The ceiling of a valid
certificate on SST-2"); tuning seeds only.

Runs ``tbal run`` (by default text-paper on SST-2, pool 20k, softmax; ``--data``, ``--preset``,
``--pool-size all`` and ``--confidence`` for other data, e.g. bench/hard_mnist.py's images) in process
and keeps the round that certifies with the largest δ_k (the final planned round): the scores of its
D_th points and of its pool, with their true labels. Then, per seed:

- **oracle**: the largest share of the pool, most confident first, whose true error is ≤ ε (labels known);
- **noise-free ceiling**: the largest coverage c whose Clopper–Pearson bound at δ_k passes when the
  validation points inside it (c·|D_th|, or c/s·|D_th| when D_th samples a stratum of share s of the pool,
  rounds captured since the fourteenth session) hold exactly the pool's mistake rate there (no sampling
  noise, one test at the whole δ_k, no walk): what a perfect procedure with this classifier and this many
  validation points reaches in expectation;
- **certified**: what the defaults certified in the run;
- **D_th mistakes** among its 50 / 100 / 150 / 200 most confident points (an unlucky draw there stops
  every start of the walk);
- **replayed** on the same round under the run's own thresholds settings (the auto-labels' certificate
  over the rest of the pool, its walk): what each pooled family (``thresholds.pooled_families``: both at
  δ_k / 2, the common cut or the equal rank alone at δ_k) certifies, to compare them on real rounds; the
  run's own family replayed is what the run certified (a check of the replay). Rounds captured before
  the settings were saved replay under the defaults' settings.

Usage: .venv/bin/python bench/certificate_ceiling.py --seeds 10,11,12,13 [--out DIR] [--set FIELD=VALUE ...]
       [--data FILE --preset NAME --pool-size N|all --confidence NAME]
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import betaincinv

import tbal.loop as loop
from tbal.cli import main as tbal_main
from tbal.config import ThresholdConfig, resolved_thresholds
from tbal.thresholds import PoolContext, estimate_thresholds

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2_minilm.npz"
EPSILON = 0.05


def capture(seed: int, out: Path, run_args: list[str]) -> Path:
    """Run ``tbal run`` with ``run_args`` (data, preset, ``--set`` ...) for ``seed`` and save the scores of
    the round with the largest δ_k (the final planned round) to a .npz."""
    path = out / f"round-s{seed}.npz"
    pool_truth: dict[str, np.ndarray] = {}
    stratum_round: dict[str, np.ndarray] = {}
    saved_delta = [0.0]
    make_input, run_round, rows_read = loop._oracle_round_input, loop.run_round, loop._pool_rows_read

    def recording_input(dataset: Any, *args: Any, **kwargs: Any) -> Any:
        round_input = make_input(dataset, *args, **kwargs)
        # bound by name, so that a change of the private signature fails loudly rather than misreads
        pool_rows = inspect.signature(make_input).bind(dataset, *args, **kwargs).arguments["pool_rows"]
        pool_truth["y"] = dataset.y[pool_rows]
        pool_truth["rows"] = np.asarray(pool_rows)
        pool_truth["n"] = np.asarray(len(dataset))
        return round_input

    def recording_round(inputs: loop.RoundInput, config: Any, **kwargs: Any) -> loop.RoundOutput:
        out_ = run_round(inputs, config, **kwargs)
        if out_.stratum_cut is not None:
            stratum_round.update(_stratum_ranks(out_, pool_truth))
        if out_.plan.delta > saved_delta[0]:  # the round with the largest δ_k: the final planned one
            saved_delta[0] = out_.plan.delta
            size = out_.pool_scores.size
            np.savez(
                path,
                th_scores=out_.th_scores,
                th_pred=out_.th_predicted,
                th_y=inputs.y_val[out_.th_index],
                pool_scores=out_.pool_scores,
                pool_pred=out_.pool_predicted,
                pool_y=pool_truth["y"],
                auto=out_.auto_mask,
                delta=out_.plan.delta,
                # the pool points the certificate may label (all of them without a stratum)
                pool_in_stratum=inputs.stratum.pool if inputs.stratum is not None else np.ones(size, bool),
                thresholds_config=json.dumps(dataclasses.asdict(resolved_thresholds(config))),
                **_final_pool_ranks(stratum_round, pool_truth["rows"]),
            )
        return out_

    def every_row(inputs: loop.RoundInput, *args: Any) -> np.ndarray:
        # the oracle ranks the whole pool: every round scores all of it (the decisions are the same)
        return np.arange(len(inputs.X_pool))

    loop._oracle_round_input, loop.run_round = recording_input, recording_round  # type: ignore[assignment]
    loop._pool_rows_read = every_row  # type: ignore[assignment]
    try:
        record = ["--json", str(out / f"run-s{seed}.json")]  # the run's own record, beside its round
        tbal_main(["run", *run_args, "--seeds", str(seed), "--threads", "1", "--quiet", *record])
    finally:
        loop._oracle_round_input, loop.run_round = make_input, run_round  # type: ignore[assignment]
        loop._pool_rows_read = rows_read  # type: ignore[assignment]
    return path


def _stratum_ranks(out_: loop.RoundOutput, pool_truth: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What the round that fixed the stratum ranked it by (a softmax run's score is the classifier's
    probability of its class, which the stratum uses): that rank of each data row of its pool, and the
    ranks of the pool points it left (neither auto-labeled nor queried), from which a cut of another
    share is found as the loop finds its own (bench/walk_resample.py's ``stratum=``)."""
    rank = np.full(int(pool_truth["n"]), np.nan)
    rank[pool_truth["rows"]] = out_.pool_scores
    left = ~out_.auto_mask
    left[out_.query_index] = False
    return {"rank_rows": rank, "left_rank": out_.pool_scores[left]}


def _final_pool_ranks(stratum_round: dict[str, np.ndarray], pool_rows: np.ndarray) -> dict[str, Any]:
    """The stratum round's rank of each point of the certifying round's pool, and of the pool it left."""
    if not stratum_round:
        return {}
    return {
        "stratum_rank": stratum_round["rank_rows"][pool_rows],
        "stratum_left_rank": stratum_round["left_rank"],
    }


def ceiling(path: Path) -> dict[str, float]:
    z = np.load(path)
    delta, n_th = float(z["delta"]), len(z["th_scores"])
    order = np.argsort(-z["pool_scores"])
    wrong = (z["pool_pred"] != z["pool_y"])[order]
    rate = np.cumsum(wrong) / np.arange(1, wrong.size + 1)
    oracle = np.flatnonzero(rate <= EPSILON)
    stratum = float(z["pool_in_stratum"].mean()) if "pool_in_stratum" in z.files else 1.0
    best = noise_free_ceiling(rate, n_th, delta, stratum)
    auto = z["auto"] if "auto" in z.files else np.array([np.nan])
    replayed = {f"replay {family}": replay(z, family) for family in ("both", "common", "rank")}
    replayed["replay run"] = replay(z)
    return {
        **replayed,
        "oracle": (oracle[-1] + 1) / wrong.size if oracle.size else 0.0,
        "ceiling": best,
        "error_at_30": float(rate[int(0.30 * wrong.size) - 1]),
        "error_at_35": float(rate[int(0.35 * wrong.size) - 1]),
        "certified": float(auto.mean()),
    }


def top_mistakes(path: Path, sizes: tuple[int, ...] = (50, 100, 150, 200)) -> str:
    """How many of D_th's most confident ``sizes`` points the round's classifier got wrong: where an
    unlucky validation draw stops every start of the walk."""
    z = np.load(path)
    wrong = (z["th_pred"] != z["th_y"])[np.argsort(-z["th_scores"], kind="stable")]
    return " / ".join(f"{int(wrong[:n].sum())} in {n}" for n in sizes)


def replays(path: Path, option: str, values: str) -> str:
    """``option`` (walk_step or walk_start_share) at each of the comma-separated ``values``, replayed on
    the saved round under the run's settings otherwise (its family included)."""
    z = np.load(path)

    def one(value: float) -> float:
        return replay(z, step=value) if option == "walk_step" else replay(z, start=value)

    shown = [f"{v}: {100 * one(float(v)):.1f} %" for v in values.split(",")]
    return f"({run_thresholds(z).pooled_families}) " + ", ".join(shown)


def noise_free_ceiling(rate: np.ndarray, n_th: int, delta: float, stratum: float = 1.0) -> float:
    """The largest coverage c (in steps of 0.5 %) whose Clopper–Pearson bound at ``delta`` is ≤ ε when the
    validation points inside it hold exactly the pool's mistake rate there; ``rate[k - 1]`` is the true
    error of the pool's k most confident points. D_th samples the top ``stratum`` share of the pool (the
    stratum; 1 without one), so c/``stratum``·``n_th`` of its points lie inside c, and c ≤ ``stratum``."""
    best = 0.0
    for coverage in np.arange(0.005, stratum + 1e-9, 0.005):
        k = max(1, int(coverage * rate.size))
        n = max(1, round(coverage / stratum * n_th))
        m = round(rate[k - 1] * n)
        if m < n and betaincinv(m + 1, n - m, 1 - delta) <= EPSILON:
            best = float(coverage)
    return best


def run_thresholds(z: Any) -> ThresholdConfig:
    """The run's thresholds settings as the round used them; the defaults' for a round captured before
    they were saved."""
    if "thresholds_config" not in z.files:
        return ThresholdConfig()
    return ThresholdConfig(**json.loads(str(z["thresholds_config"])))


def replay(
    z: Any,
    family: str | None = None,
    share: float | None = None,
    restarts: int | None = None,
    step: float | None = None,
    start: float | None = None,
) -> float:
    """The share of the round's pool that ``family`` (with the fallback walk's ``share`` η over
    ``restarts`` J, testing the candidates ``walk_step`` = ``step`` keeps, starting by
    ``walk_start_share`` = ``start``) certifies on the round's D_th at its δ_k, each left None as the run
    had it. The pooled guarantee on the auto-labels (a dataset-guarantee run's would need its labeled
    counts); with ``finite_pool``, over the pool points the round could label."""
    run = run_thresholds(z)
    given = {
        "pooled_families": family,
        "fallback_share": share,
        "fallback_checkpoints": restarts,
        "walk_step": step,
        "walk_start_share": start,
    }
    changes: dict[str, Any] = {name: value for name, value in given.items() if value is not None}
    config = dataclasses.replace(run, guarantee="pooled", **changes)
    k = int(max(z["th_y"].max(), z["pool_y"].max())) + 1
    correct = z["th_pred"] == z["th_y"]
    inside = z["pool_in_stratum"].astype(bool)
    pool = PoolContext(z["pool_scores"][inside], z["pool_pred"][inside])
    result = estimate_thresholds(
        z["th_scores"], z["th_pred"], correct, k, config, delta=float(z["delta"]), pool=pool
    )
    return float(np.mean((z["pool_scores"] >= result.thresholds[z["pool_pred"]]) & inside))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", default="10,11,12,13")
    parser.add_argument("--out", type=Path, default=None, help="keep the captured rounds here")
    parser.add_argument("--restarts", action="store_true", help="also replay η 0-0.7 × J 1-5 (common cut)")
    parser.add_argument(
        "--steps", default="", help="also replay these walk_step values, e.g. 0,0.1,0.2 (the run's family)"
    )
    parser.add_argument(
        "--set", dest="settings", action="append", default=[], help="FIELD=VALUE for tbal run (repeatable)"
    )
    parser.add_argument(
        "--starts", default="", help="also replay these walk_start_share values, e.g. 0,0.3 (run's family)"
    )
    parser.add_argument("--data", default=str(DATA), help="tbal run --data (default: SST-2)")
    parser.add_argument("--preset", default="text-paper")
    parser.add_argument("--pool-size", default="20000", help="tbal run --pool-size ('all': the whole file)")
    parser.add_argument("--confidence", default="softmax")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="tbal-ceiling-"))
    out.mkdir(parents=True, exist_ok=True)
    run_args = ["--data", args.data, "--preset", args.preset, "--confidence", args.confidence]
    run_args += [] if args.pool_size == "all" else ["--pool-size", args.pool_size]
    run_args += [arg for item in args.settings for arg in ("--set", item)]
    for seed in (int(s) for s in args.seeds.split(",")):
        path = out / f"round-s{seed}.npz"
        figures = ceiling(path if path.exists() else capture(seed, out, run_args))
        pct = {name: 100 * value for name, value in figures.items()}
        print(
            f"seed {seed}: oracle {pct['oracle']:.1f} %, noise-free ceiling {pct['ceiling']:.1f} %, "
            f"certified {pct['certified']:.1f} %; true error of the top 30 % {pct['error_at_30']:.2f} %, "
            f"top 35 % {pct['error_at_35']:.2f} %; replayed: both {pct['replay both']:.1f} %, common "
            f"{pct['replay common']:.1f} %, rank {pct['replay rank']:.1f} %, the run's "
            f"{pct['replay run']:.1f} %; D_th mistakes among its most "
            f"confident: {top_mistakes(path)}"
        )
        for option, values in (("walk_step", args.steps), ("walk_start_share", args.starts)):
            if values:
                shown = replays(path, option, values)
                print(f"seed {seed} {option} replays: {shown}", flush=True)
        if args.restarts:
            z = np.load(path)
            grid = [(0.0, 1)] + [(eta, j) for eta in (0.3, 0.5, 0.7) for j in (1, 3, 5)]
            shown = ", ".join(f"η {eta} J {j}: {100 * replay(z, 'common', eta, j):.1f} %" for eta, j in grid)
            print(f"seed {seed} restarts (common cut): {shown}")


if __name__ == "__main__":
    main()
