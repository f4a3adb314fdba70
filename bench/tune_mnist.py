"""Fast experiments for tuning the MNIST preset (classifier training and confidence functions).

Two verbs:

``round0``  trains the round-0 classifier of :func:`tbal.loop.run_tbal` once per seed (same split of the
            data, same seed training set, same per-round seed as the loop), caches its predictions, then
            fits each confidence setting on D_cal and reports, per setting and averaged over seeds:
            AUROC of correctness on the pool (pooled over classes, and the mean within-class AUROC,
            which is what per-class thresholds use) and the round-0 outcome (pool coverage and true
            error of the auto-labeled points) under the configured bound.
``loop``    runs the whole loop (:func:`tbal.loop.run_tbal`) for each seed with ``--set`` overrides,
            two seeds at a time in separate processes (one torch thread each), and prints coverage, true
            error, rounds and wall / CPU time per seed.

Hyperparameters should be chosen on seeds outside the benchmark's 0..4 (e.g. 10..19) or on
``sklearn_digits.npz``, never on the benchmark's own seeds. Examples (from the repository root)::

    .venv/bin/python bench/tune_mnist.py round0 --seeds 10,11,12 \
        --conf softmax --conf colander --conf "colander:confidence.colander.alpha=0.1"
    .venv/bin/python bench/tune_mnist.py loop --seeds 10,11,12,13 --set confidence.name=colander \
        --set thresholds.bound=paper

A confidence setting is ``NAME`` or ``NAME:FIELD=VALUE,FIELD=VALUE`` with dotted config fields (any field
of the config; ``loop.calibration_fraction`` and ``thresholds.*`` change the round-0 evaluation too).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tbal.config import TBALConfig, config_to_dict, preset, with_overrides  # noqa: E402
from tbal.data import Dataset, load_dataset  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mnist_test.npz"
CACHE = Path(os.environ.get("TBAL_TUNE_CACHE", "/tmp/tbal_tune_cache"))


def _set_threads() -> None:
    import torch

    torch.set_num_threads(1)


def parse_overrides(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        for part in item.split(","):
            if part.strip():
                key, value = part.split("=", 1)
                out[key.strip()] = value.strip()
    return out


# --------------------------------------------------------------------------------------------------------
# Round 0


@dataclass
class Round0:
    """Round-0 classifier outputs: validation (n_v) and unlabeled pool (n_p) logits / features / labels."""

    val_logits: np.ndarray
    val_features: np.ndarray
    y_val: np.ndarray
    pool_logits: np.ndarray
    pool_features: np.ndarray
    y_pool: np.ndarray
    train_seconds: float


def round0_predictions(dataset: Dataset, config: TBALConfig, seed: int, tag: str) -> Round0:
    """Train round 0 exactly as :func:`tbal.loop.run_tbal` does (cached on disk by config and seed)."""
    from tbal.loop import _working_rows, human_targets
    from tbal.models import build_model
    from tbal.plan import draw_initial_sets, round_seed
    from tbal.predictions import predict
    from tbal.training.train import train_classifier

    key = json.dumps(
        {
            "train": config_to_dict(config.train),
            "model": config_to_dict(config.model),
            "loop": config_to_dict(config.loop),
            "seed": seed,
            "tag": tag,
        },
        sort_keys=True,
    )
    path = CACHE / f"r0_{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"
    if path.exists():
        z = np.load(path)
        return Round0(
            **{k: z[k] for k in z.files if k != "train_seconds"}, train_seconds=float(z["train_seconds"])
        )
    rows = _working_rows(len(dataset), config.loop.pool_size, seed)
    validation, train = draw_initial_sets(rows, config, seed)
    rest = np.setdiff1d(rows, np.concatenate([validation, train]))
    started = time.process_time()
    model = build_model(config.model, dataset.input_shape, dataset.num_classes)
    train_classifier(
        model,
        dataset.X[train],
        human_targets(dataset, train, config),
        config.train,
        seed=round_seed(seed, 0),
    )
    seconds = time.process_time() - started
    v = predict(model, dataset.X[validation])
    p = predict(model, dataset.X[rest])
    out = Round0(v.logits, v.features, dataset.y[validation], p.logits, p.features, dataset.y[rest], seconds)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{k: getattr(out, k) for k in out.__dataclass_fields__})
    return out


def auroc(scores: np.ndarray, correct: np.ndarray) -> float:
    """P(score of a correct point > score of a wrong one), ties counting ½; nan if a group is empty."""
    from scipy.stats import rankdata

    pos, neg = int(correct.sum()), int((~correct).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[correct].sum() - pos * (pos + 1) / 2) / (pos * neg))


def evaluate_round0(r0: Round0, config: TBALConfig, seed: int) -> dict[str, float]:
    """Fit the configured confidence function on D_cal (split as in :func:`tbal.loop.run_round`), set
    thresholds on D_th, and measure AUROC and the auto-labeling outcome on the pool."""
    from tbal.confidence import make_confidence
    from tbal.loop import split_validation
    from tbal.plan import round_seed
    from tbal.predictions import Predictions
    from tbal.thresholds import auto_label_mask, estimate_thresholds

    k = r0.val_logits.shape[1]
    seed_0 = round_seed(seed, 0)
    cal, th = split_validation(len(r0.y_val), config.loop.calibration_fraction, np.random.default_rng(seed_0))
    val = Predictions(r0.val_logits, r0.val_features)
    pool = Predictions(r0.pool_logits, r0.pool_features)
    started = time.process_time()
    conf = make_confidence(config.confidence, k).fit(val.subset(cal), r0.y_val[cal], seed=seed_0)
    fit_seconds = time.process_time() - started
    th_preds = val.subset(th)
    result = estimate_thresholds(
        conf.score(th_preds),
        th_preds.predicted,
        th_preds.predicted == r0.y_val[th],
        k,
        # the population bound these tuning runs measured (the presets' finite_pool needs the pool)
        dataclasses.replace(config.thresholds, finite_pool=False),
        delta_divisor=config.loop.planned_rounds if config.thresholds.split_delta_over_rounds else 1,
    )
    s = conf.score(pool)
    yhat = pool.predicted
    correct = yhat == r0.y_pool
    mask = auto_label_mask(s, yhat, result.thresholds)
    within = [auroc(s[yhat == c], correct[yhat == c]) for c in range(k)]
    val_removed = auto_label_mask(conf.score(val), val.predicted, result.thresholds)
    return {
        "acc": float(correct.mean()),
        "auroc": auroc(s, correct),
        "auroc_within": float(np.nanmean(within)),
        "coverage": float(mask.mean()),
        "error": float(1.0 - correct[mask].mean()) if mask.any() else 0.0,
        "val_left": int((~val_removed).sum()),
        "fit_s": fit_seconds,
    }


def cmd_round0(args: argparse.Namespace) -> None:
    _set_threads()
    dataset = load_dataset(args.data)
    base = with_overrides(preset(args.preset), parse_overrides(args.set))
    settings = args.conf or ["softmax"]
    seeds = [int(s) for s in args.seeds.split(",")]
    rows: dict[str, list[dict[str, float]]] = {s: [] for s in settings}
    for seed in seeds:
        r0 = round0_predictions(dataset, base, seed, args.tag)
        for setting in settings:
            name, _, rest = setting.partition(":")
            overrides = {"confidence.name": name, **parse_overrides([rest] if rest else [])}
            config = with_overrides(base, overrides)
            rows[setting].append(evaluate_round0(r0, config, seed))
        print(
            f"seed {seed}: classifier accuracy on the pool {rows[settings[0]][-1]['acc']:.4f} "
            f"(train {r0.train_seconds:.1f} s CPU)",
            flush=True,
        )
    print(
        f"\n| setting | AUROC | within-class AUROC | round-0 coverage % | round-0 error % | max error % "
        f"| val left | fit s |  ({len(seeds)} seeds)"
    )
    print("|---|---|---|---|---|---|---|---|")
    for setting, res in rows.items():

        def mean(key: str, res: list[dict[str, float]] = res) -> float:
            return float(np.mean([r[key] for r in res]))

        print(
            f"| {setting} | {mean('auroc'):.3f} | {mean('auroc_within'):.3f} | {100 * mean('coverage'):.1f} "
            f"| {100 * mean('error'):.2f} | {100 * max(r['error'] for r in res):.2f} "
            f"| {mean('val_left'):.0f} "
            f"| {mean('fit_s'):.2f} |"
        )


# --------------------------------------------------------------------------------------------------------
# Whole loop


def _one_loop(data: str, preset_name: str, overrides: dict[str, str], seed: int) -> dict[str, Any]:
    _set_threads()
    from tbal.loop import run_tbal

    dataset = load_dataset(data)
    config = with_overrides(preset(preset_name), overrides)
    cpu = time.process_time()
    result = run_tbal(dataset, config, seed=seed)
    timings: dict[str, float] = {}
    for r in result.rounds:
        for stage, t in r.timings.items():
            timings[stage] = timings.get(stage, 0.0) + t
    return {
        "seed": seed,
        "coverage": result.coverage,
        "error": result.true_error or 0.0,
        "rounds": len(result.rounds),
        "auto_rounds": sum(1 for r in result.rounds if r.auto_labeled_round > 0),
        "wall_s": result.wall_time_s,
        "cpu_s": time.process_time() - cpu,
        "timings": timings,
        "per_round": [
            (r.auto_labeled_round, r.true_error_round, r.validation_remaining) for r in result.rounds
        ],
    }


def cmd_loop(args: argparse.Namespace) -> None:
    overrides = parse_overrides(args.set)
    seeds = [int(s) for s in args.seeds.split(",")]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = list(
            pool.map(
                _one_loop,
                [str(args.data)] * len(seeds),
                [args.preset] * len(seeds),
                [overrides] * len(seeds),
                seeds,
            )
        )
    for r in results:
        stages = " ".join(f"{k} {v:.1f}" for k, v in r["timings"].items())
        print(
            f"seed {r['seed']}: coverage {100 * r['coverage']:.1f}%  error {100 * r['error']:.2f}%  "
            f"rounds {r['rounds']} (auto-labeling in {r['auto_rounds']})  wall {r['wall_s']:.0f} s  "
            f"cpu {r['cpu_s']:.0f} s  [{stages}]"
        )
        if args.verbose:
            print("   per round (auto-labeled, error, val left):", r["per_round"])
    cov = np.array([r["coverage"] for r in results])
    err = np.array([r["error"] for r in results])
    print(
        f"mean coverage {100 * cov.mean():.1f}% (min {100 * cov.min():.1f}), "
        f"mean error {100 * err.mean():.2f}% "
        f"(max {100 * err.max():.2f}); seeds meeting coverage ≥ 90% and error ≤ 5%: "
        f"{int(np.sum((cov >= 0.9) & (err <= 0.05)))} / {len(seeds)}   overrides: {overrides}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="verb", required=True)
    for verb in ("round0", "loop"):
        p = sub.add_parser(verb)
        p.add_argument("--data", type=Path, default=DEFAULT_DATA)
        p.add_argument("--preset", default="mnist-paper")
        p.add_argument("--seeds", default="10,11,12")
        p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    r0 = sub.choices["round0"]
    r0.add_argument("--conf", action="append", help="NAME or NAME:FIELD=VALUE,... (repeatable)")
    r0.add_argument("--tag", default="", help="cache tag (change it after editing the classifier code)")
    lp = sub.choices["loop"]
    lp.add_argument("--workers", type=int, default=2)
    lp.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    {"round0": cmd_round0, "loop": cmd_loop}[args.verb](args)


if __name__ == "__main__":
    main()
