"""Calibration of augmentation methods on clean and corrupted images (issue 4).

Trains LeNet-5 on a fixed random subset of the MNIST test set (the only MNIST split we have) with each
train-time method, then measures accuracy, ECE (10 bins) and NLL on held-out images, clean and under
three corruptions at three severities each (images in [0, 1], clipped after corrupting):

- Gaussian noise: x + σ·N(0, 1), σ ∈ {0.2, 0.4, 0.6};
- Gaussian blur: a separable Gaussian kernel of sd s ∈ {0.75, 1.25, 1.75} pixels (radius ⌈3s⌉);
- contrast: mean + c·(x − mean) per image, c ∈ {0.4, 0.2, 0.1}.

Every method trains on the same training images; ``autolabel`` (and only it) also uses a separate
validation split to move its targets, given to it as ``validation=`` (the other methods ignore it).
Example (from the repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python bench/augment_calibration.py --seeds 0,1,2 \
        --methods vanilla,label_smoothing,mixup,autolabel-mixup,autolabel-noise --json part1.json

Results are written once all runs are done (``--json``); each finished run prints its clean scores.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bench.lenet_training import measured_lenet_training  # noqa: E402
from tbal.config import ModelConfig, TrainConfig, config_to_dict, with_overrides  # noqa: E402
from tbal.data import load_dataset  # noqa: E402
from tbal.metrics import expected_calibration_error, negative_log_likelihood  # noqa: E402
from tbal.models import build_model  # noqa: E402
from tbal.predictions import predict  # noqa: E402
from tbal.training.objectives import OBJECTIVES, AutoLabel, TrainContext  # noqa: E402
from tbal.training.train import one_hot, train_classifier  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mnist_test.npz"
SPLIT_SEED = 1234  # the train / validation / test split is the same for every seed and method

METHODS: dict[str, dict[str, Any]] = {
    "vanilla": {"method": "vanilla"},
    "label_smoothing": {"method": "label_smoothing"},
    "mixup": {"method": "mixup"},
    "autolabel-mixup": {"method": "autolabel", "autolabel_augment": "mixup"},
    "autolabel-noise": {"method": "autolabel", "autolabel_augment": "noise"},
    # ablations: the same augmentations with fixed labels, to separate the labels from the augmentation
    "mixup-alpha1": {"method": "mixup", "mixup_alpha": 1.0},  # λ ~ U(0, 1), as AutoLabel's mixup draws it
    "onehot-mixup": {"method": "autolabel", "autolabel_augment": "mixup", "autolabel_step": 0.0},
    "onehot-noise": {"method": "autolabel", "autolabel_augment": "noise", "autolabel_step": 0.0},
    # the other train-time methods, for reference
    "squentropy": {"method": "squentropy"},
    "crl": {"method": "crl"},
    "fmfp": {"method": "fmfp"},
    "saliency_mixup": {"method": "saliency_mixup"},
    "cutmix": {"method": "cutmix"},
}
CORRUPTIONS: dict[str, tuple[float, ...]] = {
    "noise": (0.2, 0.4, 0.6),
    "blur": (0.75, 1.25, 1.75),
    "contrast": (0.4, 0.2, 0.1),
}


def corrupt(x: np.ndarray, kind: str, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Corrupted copy of images x (n, C, H, W) in [0, 1], clipped to [0, 1]."""
    if kind == "noise":
        out = x + severity * rng.standard_normal(size=x.shape).astype(np.float32)
    elif kind == "blur":
        out = _blur(x, severity)
    elif kind == "contrast":
        mean = x.mean(axis=(1, 2, 3), keepdims=True)
        out = mean + severity * (x - mean)
    else:
        raise ValueError(f"unknown corruption {kind!r}")
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _blur(x: np.ndarray, sd: float) -> np.ndarray:
    radius = math.ceil(3 * sd)
    grid = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(grid**2) / (2 * sd**2))
    kernel = kernel / kernel.sum()
    t = torch.from_numpy(x)
    c = t.shape[1]
    rows = kernel.reshape(1, 1, -1, 1).repeat(c, 1, 1, 1)
    cols = kernel.reshape(1, 1, 1, -1).repeat(c, 1, 1, 1)
    t = F.conv2d(F.pad(t, (0, 0, radius, radius)), rows, groups=c)
    t = F.conv2d(F.pad(t, (radius, radius, 0, 0)), cols, groups=c)
    return t.numpy()


def evaluate(model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    preds = predict(model, x)  # type: ignore[arg-type]
    probs = preds.probs
    correct = preds.predicted == y
    return {
        "accuracy": float(correct.mean()),
        "ece": expected_calibration_error(probs.max(axis=1), correct),
        "nll": negative_log_likelihood(probs, y),
        "confidence": float(probs.max(axis=1).mean()),
    }


_AUTOLABELS: list[AutoLabel] = []


def _recording_autolabel(context: TrainContext) -> AutoLabel:
    """Registered in place of AutoLabel in this process only, to read its learned targets afterwards."""
    objective = AutoLabel(context)
    _AUTOLABELS.append(objective)
    return objective


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(1)
    OBJECTIVES["autolabel"] = _recording_autolabel
    ds = load_dataset(args.data)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(ds))
    train = order[: args.train]
    val = order[args.train : args.train + args.validation]
    test = order[args.train + args.validation : args.train + args.validation + args.test]
    X, y = ds.X, ds.y
    base = measured_lenet_training(args.epochs)
    sets = {"clean": X[test]}
    for kind, severities in CORRUPTIONS.items():
        for level, severity in enumerate(severities, start=1):
            sets[f"{kind}-{level}"] = corrupt(X[test], kind, severity, np.random.default_rng(level))
    results: dict[str, Any] = {}
    for name in args.methods:
        for seed in args.seeds:
            config = with_overrides_train(base, METHODS[name])
            model = build_model(ModelConfig(name="lenet5"), ds.input_shape, ds.num_classes)
            start = time.perf_counter()
            train_classifier(
                model,
                X[train],
                one_hot(y[train], ds.num_classes),
                config,
                seed=seed,
                validation=(X[val], y[val]),
            )
            seconds = time.perf_counter() - start
            scores = {set_name: evaluate(model, xs, y[test]) for set_name, xs in sets.items()}
            entry: dict[str, Any] = {"train_seconds": seconds, "scores": scores}
            if config.method == "autolabel":  # ỹ per bucket (near-clean first) after the last epoch
                entry["autolabel_targets"] = [float(c) for c in _AUTOLABELS[-1].labels.confidence]
            results.setdefault(name, {"config": config_to_dict(config), "seeds": {}})["seeds"][str(seed)] = (
                entry
            )
            clean = scores["clean"]
            print(
                f"{name:16s} seed {seed}: clean acc {clean['accuracy']:.4f} ece {clean['ece']:.4f} "
                f"({seconds:.0f} s)",
                flush=True,
            )
    return {
        "data": str(args.data),
        "split": {"seed": SPLIT_SEED, "train": args.train, "validation": args.validation, "test": args.test},
        "corruptions": {k: list(v) for k, v in CORRUPTIONS.items()},
        "results": results,
    }


def with_overrides_train(base: TrainConfig, changes: dict[str, Any]) -> TrainConfig:
    from tbal.config import TBALConfig

    return with_overrides(TBALConfig(train=base), {f"train.{k}": v for k, v in changes.items()}).train


def table(record: dict[str, Any]) -> str:
    """Markdown: per method, mean ± sd over seeds of accuracy and ECE, clean and per corruption (mean of
    its severities), and the worst severity."""
    groups = ["clean", *CORRUPTIONS]
    head = "| method | " + " | ".join(f"{g} acc / ECE" for g in groups) + " |"
    lines = [head, "|---|" + "---|" * len(groups)]
    for name, entry in record["results"].items():
        cells = []
        for group in groups:
            keys = ["clean"] if group == "clean" else [f"{group}-{i}" for i in (1, 2, 3)]
            accs, eces = [], []
            for run_ in entry["seeds"].values():
                accs.append(np.mean([run_["scores"][k]["accuracy"] for k in keys]))
                eces.append(np.mean([run_["scores"][k]["ece"] for k in keys]))
            acc_cell = f"{100 * np.mean(accs):.1f} ± {100 * np.std(accs):.1f}"
            cells.append(f"{acc_cell} / {100 * np.mean(eces):.1f} ± {100 * np.std(eces):.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def severity_table(record: dict[str, Any], kind: str) -> str:
    """Markdown: ECE (mean over seeds, %) per severity of one corruption."""
    lines = [f"| method | {kind}-1 | {kind}-2 | {kind}-3 |", "|---|---|---|---|"]
    for name, entry in record["results"].items():
        cells = []
        for level in (1, 2, 3):
            runs = entry["seeds"].values()
            acc = np.mean([r["scores"][f"{kind}-{level}"]["accuracy"] for r in runs])
            ece = np.mean([r["scores"][f"{kind}-{level}"]["ece"] for r in runs])
            cells.append(f"{100 * acc:.1f} / {100 * ece:.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--validation", type=int, default=500)
    parser.add_argument("--test", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--from-json", type=Path, nargs="+", help="only print the tables of earlier runs (results merged)"
    )
    args = parser.parse_args()
    if args.from_json:
        record: dict[str, Any] = {"results": {}}
        for path in args.from_json:
            record["results"].update(json.loads(path.read_text())["results"])
    else:
        args.seeds = [int(s) for s in args.seeds.split(",")]
        args.methods = [m for m in args.methods.split(",") if m]
        start = time.perf_counter()
        record = run(args)
        record["wall_seconds"] = time.perf_counter() - start
        record["command"] = " ".join(sys.argv)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(record, indent=1))
    print(table(record))
    for kind in CORRUPTIONS:
        print()
        print(severity_table(record, kind))
    for name, entry in record["results"].items():
        targets = [r["autolabel_targets"] for r in entry["seeds"].values() if "autolabel_targets" in r]
        if targets:
            mean = np.round(np.mean(targets, axis=0), 3).tolist()
            print(f"{name}: learned ỹ per bucket (mean over seeds) {mean}")


if __name__ == "__main__":
    main()
