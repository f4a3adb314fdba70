"""The guarantee with self-training, by simulation of whole runs (issue 11: "the 1,000-draw simulation of the
bound for every new procedure, including runs longer than planned"; BENCHMARKS.md, "The guarantee by
simulation").

Each run is the library's loop (``tbal.loop``) on one fixed synthetic problem (four overlapping Gaussian
classes in 8 dimensions: a small MLP is about 80 % accurate), with a seed of its own, so that the
validation draw, the queries and the training differ from run to run. Every round that may auto-label
self-trains (``train.pseudo_label_share`` 0.9, as ``mnist-paper``), under the ``final`` δ schedule. The
run does not stop when the budget is spent: ``--extra`` more rounds follow, each with its tail share of δ
(:mod:`tbal.plan`), retraining, self-training again and certifying on the validation points left, as a
service project does when it keeps running past its plan.

A run fails when any of its rounds auto-labels points whose true error is above ε; the guarantee says
that happens in at most δ of the runs. With ``--no-self-training`` the same runs without it, for
comparison. With ``--targeted K`` the stratum of :mod:`tbal.plan` too: K of the 400 validation points are
drawn inside the stratum (the top ``--stratum-share`` of the pool left) by the round before the certifying
one, and the rounds after it certify inside the stratum only.

With ``--soft-pseudo-labels`` the
pseudo-labels are the first classifier's softmax rows (``train.pseudo_label_targets`` soft). With
``--train-outside`` the rounds that may auto-label inside the stratum also train on the validation points
outside it (``loop.train_outside_stratum``).

Usage: .venv/bin/python bench/simulate_self_training.py --runs 1000 [--extra 3] [--no-self-training]
       [--targeted K --stratum-share Q --stratum-error-factor C] [--soft-pseudo-labels] [--train-outside]
       [--show N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from tbal import loop
from tbal.config import TBALConfig, with_overrides
from tbal.data import Dataset, make_dataset

EPSILON = 0.05
DELTA = 0.1  # as the other long-run simulations (tests/tbal/test_plan.py)


def problem(n: int = 4000, seed: int = 2026) -> Dataset:
    """Four Gaussian classes in 8 dimensions whose centres are close enough for ~20 % mistakes."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=1.2, size=(4, 8))
    y = rng.integers(0, 4, size=n)
    X = centers[y] + rng.normal(size=(n, 8))
    return make_dataset(X.astype(np.float32), y)


def config(
    self_training: bool,
    targeted: int = 0,
    stratum_share: float = 0.5,
    error_factor: float = 0.0,
    pseudo_targets: str = "hard",
    train_outside: bool = False,
) -> TBALConfig:
    return with_overrides(
        TBALConfig(),
        {
            "loop.label_budget": 300,
            "loop.seed_size": 150,
            "loop.batch_size": 50,
            "loop.validation_size": 400,
            "model.name": "mlp",
            "model.hidden": "32",
            "model.activation": "relu",
            "train.epochs": 20,
            "train.pseudo_label_share": 0.9 if self_training else 0.0,
            "train.pseudo_label_epochs": 10,
            "train.pseudo_label_targets": pseudo_targets,
            "thresholds.epsilon": EPSILON,
            "thresholds.delta": DELTA,
            "loop.targeted_validation": targeted,
            "loop.stratum_share": stratum_share,
            "loop.stratum_error_factor": error_factor,
            "loop.train_outside_stratum": train_outside,
        },
    )


def one_run(dataset: Dataset, cfg: TBALConfig, seed: int, extra: int) -> list[loop.RoundRecord]:
    """Every round's record of one run, running ``extra`` rounds past the plan."""
    rows = loop._working_rows(len(dataset), cfg.loop.pool_size, seed)
    sets = loop._HumanSets.draw(rows, len(dataset), cfg, seed)
    pool_size = loop._pool_size(rows, sets, cfg)
    run = loop._RunTotals()
    records = []
    for round_index in range(cfg.loop.planned_rounds + extra):
        record, _, _ = loop._simulated_round(
            dataset, cfg, sets, run, round_index, seed=seed, pool_size=pool_size, progress=None
        )
        records.append(record)
        if not sets.pool.any() or sets.validation.size < 2:
            break
    return records


def above_epsilon(records: list[loop.RoundRecord]) -> bool:
    """Whether any round auto-labeled points more than ε wrong."""
    return any(r.true_error_round is not None and r.true_error_round > EPSILON for r in records)


def show(seed: int, records: list[loop.RoundRecord]) -> None:
    for r in records:
        if r.auto_labeled_round:
            print(
                f"run {seed} round {r.round}: {r.auto_labeled_round} auto-labeled, bound "
                f"{100 * (r.pooled_error_bound or 0):.2f} %, true error "
                f"{100 * (r.true_error_round or 0):.2f} %, {r.validation_remaining} validation points left",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--extra", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--no-self-training", action="store_true")
    parser.add_argument("--show", type=int, default=0, help="print the certifying rounds of the first N runs")
    parser.add_argument("--targeted", type=int, default=0, help="validation points drawn inside the stratum")
    parser.add_argument("--stratum-share", type=float, default=0.5)
    parser.add_argument("--stratum-error-factor", type=float, default=0.0)
    parser.add_argument(
        "--soft-pseudo-labels", action="store_true", help="train.pseudo_label_targets soft (the softmax rows)"
    )
    parser.add_argument(
        "--train-outside",
        action="store_true",
        help="loop.train_outside_stratum: train on the validation points outside the stratum too",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    dataset = problem()
    pseudo_targets = "soft" if args.soft_pseudo_labels else "hard"
    cfg = config(
        not args.no_self_training,
        args.targeted,
        args.stratum_share,
        args.stratum_error_factor,
        pseudo_targets,
        args.train_outside,
    )
    failures, coverages, started = 0, [], time.monotonic()
    for seed in range(args.first_seed, args.first_seed + args.runs):
        records = one_run(dataset, cfg, seed, args.extra)
        failures += above_epsilon(records)
        coverages.append(records[-1].coverage)
        if seed - args.first_seed < args.show:
            show(seed, records)
        if (seed - args.first_seed + 1) % 100 == 0:
            done = seed - args.first_seed + 1
            print(f"{done} runs: {failures} failed, {time.monotonic() - started:.0f} s", flush=True)
    rate = failures / args.runs
    self_training = "off" if args.no_self_training else f"on (share 0.9, {pseudo_targets} pseudo-labels)"
    margin = 3 * np.sqrt(DELTA * (1 - DELTA) / args.runs)
    print(
        f"self-training {self_training}, targeted {args.targeted} "
        f"(stratum share {args.stratum_share}, error factor {args.stratum_error_factor}"
        f"{', training on the validation points outside it' if args.train_outside else ''}), "
        f"{cfg.loop.planned_rounds} "
        f"planned rounds + {args.extra}: {failures} of {args.runs} runs had a round above ε "
        f"({100 * rate:.1f} %, δ = {DELTA}, 3-sigma margin {100 * margin:.1f} points); mean coverage "
        f"{100 * np.mean(coverages):.1f} %"
    )


if __name__ == "__main__":
    main()
