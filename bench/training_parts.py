"""What each part of ``mnist-paper``'s training is worth against the library's training defaults
(BENCHMARKS.md, "Issue 11, twelfth session"): LeNet-5 trained once on N random labels of an image file,
accuracy on the rest. Tuning seeds only.

Usage: .venv/bin/python bench/training_parts.py --data /tmp/harder_mnist.npz [--labels 200,500]
       [--seeds 10,11]
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from tbal.config import ModelConfig, TBALConfig, TrainConfig, preset
from tbal.data import prepare_inputs
from tbal.models import build_model
from tbal.predictions import predict
from tbal.training.train import one_hot, train_classifier


def variants() -> dict[str, TrainConfig]:
    """The library's defaults, then the preset's changes added one at a time, then the preset's training
    (without its self-training, which needs a pool)."""
    library = TBALConfig().train
    shifts = dataclasses.replace(library, augment_shift=2)
    standardised = dataclasses.replace(shifts, standardize_inputs=True)
    return {
        "library": library,
        "+ shifts": shifts,
        "+ standardised": standardised,
        "+ lr 0.05": dataclasses.replace(standardised, lr=0.05),
        "mnist-paper": dataclasses.replace(preset("mnist-paper").train, pseudo_label_share=0.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--labels", default="200,500")
    parser.add_argument("--seeds", default="10,11")
    args = parser.parse_args()
    archive = np.load(args.data)
    X, _ = prepare_inputs(archive["X"])
    y = archive["y"].astype(np.int64)
    for n in (int(v) for v in args.labels.split(",")):
        for seed in (int(v) for v in args.seeds.split(",")):
            order = np.random.default_rng(seed).permutation(len(y))
            train, rest = order[:n], order[n:]
            shown = []
            for name, config in variants().items():
                model = build_model(ModelConfig(name="lenet5"), input_shape=X.shape[1:], num_classes=10)
                train_classifier(model, X[train], one_hot(y[train], 10), config, seed=seed)
                accuracy = 100 * np.mean(predict(model, X[rest]).logits.argmax(axis=1) == y[rest])
                shown.append(f"{name} {accuracy:.1f} %")
            print(f"{n} labels, seed {seed}: " + " | ".join(shown), flush=True)


if __name__ == "__main__":
    main()
