"""Which network for ``mnist-paper``? A probe on tuning seeds (BENCHMARKS.md, "Issue 11, sixteenth
session").

Trains one network with ``mnist-paper``'s training on ``--labels`` random images of a data file and scores
the rest: its accuracy, and the share of them a label-knowing threshold on the classifier's probability
labels at ≤ 5 % and ≤ 2 % error (most confident first; the ceiling of any certificate with this
classifier). No active queries, no self-training: a quick comparison of networks, not a run.

Usage: .venv/bin/python bench/network_probe.py --data /tmp/harder_mnist.npz --network resnet:1
       --seeds 10,11,12 [--labels 500] [--set train.epochs=50 ...]
``--network`` is lenet5 or resnet:B (B basic blocks a stage: 1 is ResNet-8, 3 ResNet-20); ``--set`` changes
a field of the preset's configuration (a cheaper training, say), as ``tbal run --set`` does.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from tbal.config import preset, with_overrides
from tbal.data import prepare_inputs
from tbal.metrics import label_knowing_coverage
from tbal.models import build_model
from tbal.predictions import predict
from tbal.training.train import one_hot, train_classifier


def probe(data: Path, network: str, seeds: list[int], labels: int, changes: dict[str, str]) -> None:
    archive = np.load(data)
    X, _ = prepare_inputs(archive["X"])
    y = archive["y"].astype(np.int64)
    name, _, blocks = network.partition(":")
    overrides: dict[str, object] = {"model.name": name, "model.resnet_blocks": int(blocks or 1), **changes}
    config = with_overrides(preset("mnist-paper"), overrides)
    for seed in seeds:
        order = np.random.default_rng(seed).permutation(len(y))
        train, rest = order[:labels], order[labels:]
        started = time.perf_counter()
        model = build_model(config.model, input_shape=X.shape[1:], num_classes=10, seed=seed)
        train_classifier(model, X[train], one_hot(y[train], 10), config.train, seed=seed)
        probs = torch.softmax(torch.as_tensor(predict(model, X[rest]).logits), dim=1).numpy()
        score, correct = probs.max(axis=1), probs.argmax(axis=1) == y[rest]
        print(
            f"{network} seed {seed}: accuracy {100 * np.mean(correct):.1f} %, "
            f"label-knowing coverage at 5 % {100 * label_knowing_coverage(score, correct, 0.05):.1f} %, "
            f"at 2 % {100 * label_knowing_coverage(score, correct, 0.02):.1f} % "
            f"({time.perf_counter() - started:.0f} s)",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--network", default="resnet:1")
    parser.add_argument("--seeds", default="10,11,12")
    parser.add_argument("--labels", type=int, default=500)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    torch.set_num_threads(1)
    changes = dict(item.split("=", 1) for item in args.set)
    probe(args.data, args.network, [int(s) for s in args.seeds.split(",")], args.labels, changes)


if __name__ == "__main__":
    main()
