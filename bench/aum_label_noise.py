"""AUM as a detector of wrong human labels (issue 4), on MNIST with planted label errors.

A fixed random subset of the MNIST test set is given labels of which a share is flipped to another class
uniformly at random; LeNet-5 is trained on them with :func:`tbal.training.aum.compute_aum` and the AUM of
every training image is scored as a detector of the flipped ones: AUROC (flipped vs kept, lower AUM = more
suspect), precision and recall of :func:`tbal.training.aum.likely_mislabeled` (AUM < 0), and the test
accuracy of the model trained on the noisy labels. Example (from the repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python bench/aum_label_noise.py --seeds 0,1,2 \
        --json bench/results/aum_label_noise.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from bench.lenet_training import measured_lenet_training  # noqa: E402
from tbal.config import ModelConfig, config_to_dict  # noqa: E402
from tbal.data import load_dataset  # noqa: E402
from tbal.models import build_model  # noqa: E402
from tbal.predictions import predict  # noqa: E402
from tbal.training.aum import compute_aum, likely_mislabeled  # noqa: E402
from tbal.training.train import one_hot  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mnist_test.npz"
SPLIT_SEED = 1234


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(1)
    ds = load_dataset(args.data)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(ds))
    train, test = order[: args.train], order[args.train : args.train + args.test]
    config = measured_lenet_training(args.epochs)
    runs: dict[str, Any] = {}
    for seed in args.seeds:
        rng = np.random.default_rng(seed)  # the flips differ per seed, as does the training
        y_true = ds.y[train]
        flipped = rng.random(len(train)) < args.noise
        y_noisy = y_true.copy()
        y_noisy[flipped] = (y_true[flipped] + rng.integers(1, ds.num_classes, flipped.sum())) % ds.num_classes
        model = build_model(ModelConfig(name="lenet5"), ds.input_shape, ds.num_classes)
        start = time.perf_counter()
        aum = compute_aum(model, ds.X[train], one_hot(y_noisy, ds.num_classes), config, seed=seed)
        seconds = time.perf_counter() - start
        suspects = likely_mislabeled(aum)
        caught = flipped[suspects]
        runs[str(seed)] = {
            "flipped": int(flipped.sum()),
            "auroc": float(roc_auc_score(flipped, -aum)),
            "suspects": len(suspects),
            "precision": float(caught.mean()) if len(suspects) else float("nan"),
            "recall": float(caught.sum() / flipped.sum()),
            "flipped_below_median": float((aum[flipped] < np.median(aum)).mean()),
            "test_accuracy": float((predict(model, ds.X[test]).predicted == ds.y[test]).mean()),
            "train_seconds": seconds,
        }
        r = runs[str(seed)]
        print(
            f"seed {seed}: {r['flipped']} flipped, AUROC {r['auroc']:.3f}, AUM<0: {r['suspects']} suspects, "
            f"precision {r['precision']:.3f}, recall {r['recall']:.3f}, test acc {r['test_accuracy']:.4f} "
            f"({seconds:.0f} s)",
            flush=True,
        )
    return {
        "data": str(args.data),
        "split": {"seed": SPLIT_SEED, "train": args.train, "test": args.test},
        "noise": args.noise,
        "config": config_to_dict(config),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--test", type=int, default=5000)
    parser.add_argument("--noise", type=float, default=0.1, help="share of training labels flipped")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.seeds = [int(s) for s in args.seeds.split(",")]
    start = time.perf_counter()
    record = run(args)
    record["wall_seconds"] = time.perf_counter() - start
    record["command"] = " ".join(sys.argv)
    keys = ("auroc", "precision", "recall", "flipped_below_median", "test_accuracy")
    for key in keys:
        values = [r[key] for r in record["runs"].values()]
        print(f"{key}: {np.mean(values):.3f} ± {np.std(values):.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
