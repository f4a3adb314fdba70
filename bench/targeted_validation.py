"""Validation points drawn where the threshold will land: what a stratified draw would buy the certificate
(issue 11, "variance reduction in the estimate"; BENCHMARKS.md, "Issue 11, ninth session"). Tuning seeds only.

Per seed the preset's classifier is trained once on ``--labels`` random human labels; every other point is
unlabeled. Over ``--draws`` validation draws of ``--validation`` points in all, two designs are compared:

- **uniform**: every validation point drawn uniformly from the unlabeled points (today's design);
- **targeted (q, k)**: N_v − k drawn uniformly, then k more drawn uniformly from the *stratum* R, the top
  share q of the unlabeled points by the classifier's score (chosen without labels). The certificate uses
  only the validation points inside R and auto-labels only inside R.

Why targeted is valid: R depends on the scores alone; the uniform points that fall in R are a uniform
sample of R, and the k targeted ones a uniform sample of the rest of R, so together they are a uniform
sample of R, exchangeable with the points of R left to auto-label. Clopper–Pearson then holds inside R
as it does on the whole pool. In the loop this needs the stratum to be fixed by the classifier of the
round that draws the targeted points and carried to the round that certifies (not built: see
BENCHMARKS.md).

Coverage here is auto-labeled / unlabeled points left after the humans' labels (the loop divides by the
whole pool, training and validation points included, so its figures are lower by that share).

Usage:
    .venv/bin/python bench/targeted_validation.py --data ../shared/data/sst2_minilm.npz --preset text-paper \
        --pool-size 21200 --labels 1200 --validation 2400 --seeds 10,11,12,13,14,15,16,17 \
        --shares 0.4,0.5,0.6,0.8 --targeted 400,800,1200 --draws 20
    .venv/bin/python bench/hard_mnist.py write --out /tmp/hard_mnist.npz --strength 0.8
    .venv/bin/python bench/targeted_validation.py --data /tmp/hard_mnist.npz --preset mnist-paper \
        --labels 500 --validation 500 --seeds 10,11,12,13,14,15 --shares 0.5,0.7,0.85 \
        --targeted 100,200,300 --draws 100
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

# run as a script from the repository root: bench/ is on sys.path
from self_training import HumansOnly, add_common_arguments
from sst2_one_certificate import DELTA_K, oracle_coverage

from tbal.config import ThresholdConfig
from tbal.predictions import predict
from tbal.thresholds import estimate_thresholds

EPSILON = 0.05
WALK = ThresholdConfig(pooled_families="common")  # the default walk for softmax


def certify_in_stratum(
    probs: np.ndarray, wrong: np.ndarray, validation: np.ndarray, stratum: np.ndarray
) -> tuple[float, float]:
    """Coverage of the unlabeled points left and the true error of the auto-labels certified on the
    validation points inside ``stratum`` (a boolean mask), auto-labeling inside it only."""
    scores, predicted = probs.max(1), probs.argmax(1)
    d_th = validation[stratum[validation]]
    result = estimate_thresholds(
        scores[d_th], predicted[d_th], ~wrong[d_th], probs.shape[1], WALK, delta=DELTA_K
    )
    labeled = np.zeros(scores.size, dtype=bool)
    labeled[validation] = True
    auto = (scores >= result.thresholds[predicted]) & stratum & ~labeled
    error = float(wrong[auto].mean()) if auto.any() else 0.0
    return float(auto.sum() / (~labeled).sum()), error


def draw_validation(
    rng: np.random.Generator, order: np.ndarray, n_val: int, k: int, stratum: np.ndarray
) -> np.ndarray:
    """N_v − k points from the uniform ``order``, then k drawn uniformly from the rest of the stratum."""
    uniform = order[: n_val - k]
    rest = np.setdiff1d(np.flatnonzero(stratum), uniform)
    targeted = rng.choice(rest, size=min(k, rest.size), replace=False) if k else np.empty(0, np.int64)
    return np.concatenate([uniform, targeted]).astype(np.int64)


def compare(probs: np.ndarray, y: np.ndarray, args: argparse.Namespace, seed: int) -> None:
    wrong = probs.argmax(1) != y
    rank = np.argsort(np.argsort(-probs.max(1)))  # 0 = the most confident point
    designs = [(1.0, 0)] + [(q, k) for q in args.shares for k in args.targeted]
    results: dict[tuple[float, int], list[tuple[float, float]]] = {d: [] for d in designs}
    for draw in range(args.draws):
        rng = np.random.default_rng([seed, draw])
        order = rng.permutation(y.size)
        for q, k in designs:
            stratum = rank < int(q * y.size)
            validation = draw_validation(rng, order, args.validation, k, stratum)
            results[(q, k)].append(certify_in_stratum(probs, wrong, validation, stratum))
    print(
        f"seed {seed}: accuracy {100 * (1 - wrong.mean()):.1f} %, oracle coverage "
        f"{100 * oracle_coverage(probs, y, EPSILON):.1f} %",
        flush=True,
    )
    for (q, k), rows in results.items():
        values = np.array(rows)
        name = "uniform" if k == 0 else f"stratum q {q:.2f}, {k:4d} targeted"
        print(
            f"seed {seed}   {name:32s} certified {100 * values[:, 0].mean():5.1f} %, nothing in "
            f"{100 * np.mean(values[:, 0] == 0):4.1f} %, above ε in "
            f"{100 * np.mean(values[:, 1] > EPSILON):4.1f} %",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_arguments(parser, "text-paper")
    parser.add_argument("--shares", default="0.5")
    parser.add_argument("--targeted", default="800")
    args = parser.parse_args()
    args.shares = [float(s) for s in args.shares.split(",")]
    args.targeted = [int(k) for k in args.targeted.split(",")]
    torch.set_num_threads(1)
    for seed in (int(s) for s in args.seeds.split(",")):
        humans = HumansOnly.train(args, seed)
        probs = predict(humans.classifier, humans.X[humans.unlabeled]).probs
        compare(probs, humans.y[humans.unlabeled], args, seed)


if __name__ == "__main__":
    main()
