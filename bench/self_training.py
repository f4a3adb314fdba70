"""What transductive self-training buys the certificate, and whether the certificate stays valid with it.

For each seed: the preset's classifier is trained on ``--labels`` random human labels; every other point
is unlabeled. A second classifier is trained on the human labels plus the first one's pseudo-labels
(:func:`tbal.training.self_training.pseudo_label_choice` over all unlabeled points, as the loop does over
pool and validation alike). For each classifier the script reports its accuracy on the unlabeled points, the
oracle coverage (the largest most-confident share whose true error is ≤ ε) and, over ``--draws`` random
splits of the unlabeled points into a validation set of ``--validation`` points and a pool, the mean
coverage the default walk certifies (common cut, softmax, one certificate at δ_k = 0.045) and the share
of draws whose auto-labels are more than ε wrong.

Because the second classifier depends on the unlabeled points only as a set, redrawing which of them are
validation points *after* training is exactly the procedure's randomness given that set: the violation
share is a simulation of the guarantee with self-training included (it must stay ≤ δ_k).

Usage (BENCHMARKS.md, "Issue 11, eighth session"):
    .venv/bin/python bench/hard_mnist.py write --out /tmp/hard_mnist.npz --strength 0.8
    .venv/bin/python bench/self_training.py --data /tmp/hard_mnist.npz --preset mnist-paper \
        --labels 500 --validation 500 --seeds 10,11,12,13,14,15 --shares 0.9 --epochs 30 --draws 300
    .venv/bin/python bench/self_training.py --data ../shared/data/sst2_minilm.npz --preset text-paper \
        --pool-size 20000 --labels 1200 --validation 2400 --seeds 10 --shares 0.5,0.9 --epochs 10 --draws 200
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

# run as a script from the repository root: bench/ is on sys.path, as for sst2_colander_tune.py
from sst2_one_certificate import certify, oracle_coverage

from tbal.config import TBALConfig, ThresholdConfig, preset
from tbal.data import prepare_inputs
from tbal.models import Classifier, build_model
from tbal.predictions import Predictions, predict
from tbal.training.self_training import pseudo_label_choice
from tbal.training.train import one_hot, train_classifier

EPSILON = 0.05
# the default walk for softmax; certify() tests it at δ_k = 0.045, the final round's share of δ = 0.05
WALK = ThresholdConfig(pooled_families="common")


def load(path: Path, pool_size: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    archive = np.load(path)
    if "X_train" in archive.files:  # an embedding file (SST-2): a random pool of pool_size
        X, y = archive["X_train"], archive["y_train"]
        keep = np.random.default_rng(seed).permutation(len(y))[: pool_size or len(y)]
        return X[keep].astype(np.float32), y[keep].astype(np.int64)
    X, _ = prepare_inputs(archive["X"])
    return X, archive["y"].astype(np.int64)


def certified(probs: np.ndarray, y: np.ndarray, n_val: int, draws: int, seed: int) -> tuple[float, float]:
    """Mean certified coverage of the pool and the share of draws above ε, over random validation draws."""
    rng = np.random.default_rng(1000 + seed)
    coverage, above = [], 0
    for _ in range(draws):
        order = rng.permutation(len(y))
        val, pool = order[:n_val], order[n_val:]
        share, error = certify(probs[val], y[val], probs[pool], y[pool], WALK)
        coverage.append(share)
        above += error > EPSILON
    return float(np.mean(coverage)), above / draws


def report(tag: str, probs: np.ndarray, y: np.ndarray, args: argparse.Namespace, seed: int) -> None:
    coverage, above = certified(probs, y, args.validation, args.draws, seed)
    oracle = oracle_coverage(probs, y, EPSILON)
    print(
        f"seed {seed} {tag}: accuracy {100 * np.mean(probs.argmax(1) == y):.1f} %, certified "
        f"{100 * coverage:.1f} %, draws above ε {100 * above:.1f} %, oracle {100 * oracle:.1f} %",
        flush=True,
    )


@dataclasses.dataclass(frozen=True)
class HumansOnly:
    """A seed's data split into ``--labels`` random human labels and the unlabeled rest, and the preset's
    classifier trained on the human labels alone."""

    config: TBALConfig
    X: np.ndarray
    y: np.ndarray
    labeled: np.ndarray
    unlabeled: np.ndarray
    classifier: Classifier

    @classmethod
    def train(cls, args: argparse.Namespace, seed: int) -> HumansOnly:
        config = preset(args.preset)
        X, y = load(args.data, args.pool_size, seed)
        order = np.random.default_rng(seed).permutation(len(y))
        labeled, unlabeled = order[: args.labels], order[args.labels :]
        k = int(y.max()) + 1
        classifier = build_model(config.model, input_shape=X.shape[1:], num_classes=k)
        train_classifier(classifier, X[labeled], one_hot(y[labeled], k), config.train, seed=seed)
        return cls(config, X, y, labeled, unlabeled, classifier)


def add_common_arguments(parser: argparse.ArgumentParser, preset_name: str) -> None:
    """The data, the split and the draws, as this script and bench/targeted_validation.py take them."""
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--preset", default=preset_name)
    parser.add_argument("--pool-size", type=int, default=None)
    parser.add_argument("--labels", type=int, default=500)
    parser.add_argument("--validation", type=int, default=500)
    parser.add_argument("--seeds", default="10,11")
    parser.add_argument("--draws", type=int, default=300)


def run_seed(args: argparse.Namespace, seed: int) -> None:
    humans = HumansOnly.train(args, seed)
    config, X, y, labeled, unlabeled = humans.config, humans.X, humans.y, humans.labeled, humans.unlabeled
    k = int(y.max()) + 1
    preds: Predictions = predict(humans.classifier, X[unlabeled])
    report("humans only", preds.probs, y[unlabeled], args, seed)
    for share in args.shares:
        index, pseudo = pseudo_label_choice(preds, share, args.limit, np.random.default_rng([seed, 1]))
        started = time.monotonic()
        second = build_model(config.model, input_shape=X.shape[1:], num_classes=k)
        train_classifier(
            second,
            np.concatenate([X[labeled], X[unlabeled][index]]),
            np.concatenate([one_hot(y[labeled], k), one_hot(pseudo, k)]),
            dataclasses.replace(config.train, epochs=args.epochs),
            seed=seed,
        )
        right = 100 * np.mean(pseudo == y[unlabeled][index])
        tag = f"self-trained, share {share} ({index.size} pseudo-labels {right:.1f} % right, "
        tag += f"{time.monotonic() - started:.0f} s)"
        report(tag, predict(second, X[unlabeled]).probs, y[unlabeled], args, seed)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_arguments(parser, "mnist-paper")
    parser.add_argument("--shares", default="0.9")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--limit", type=int, default=20_000)
    args = parser.parse_args()
    args.shares = [float(s) for s in args.shares.split(",")]
    torch.set_num_threads(1)
    for seed in (int(s) for s in args.seeds.split(",")):
        run_seed(args, seed)


if __name__ == "__main__":
    main()
