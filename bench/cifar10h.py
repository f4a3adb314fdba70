"""Soft labels on CIFAR-10H: hard / soft / sampled targets × plain / MC Dropout / SNGP / DUQ.

The table shape of "Do soft labels enhance neural network training?": a ResNet trained on a fixed training
split of the CIFAR-10 test set with its CIFAR-10H human label distributions (Peterson et al., ICCV 2019),
evaluated on the held-out split: accuracy, ECE (10 bins), NLL, cross-entropy against the human
distributions, second-best accuracy, OOD AUROC against MNIST (resized to 32×32×3), and the accuracy drop
under FGSM with ε = 0.005 on the [0, 1] input scale (tbal.evaluation).

    .venv/bin/python bench/cifar10h.py --models plain --targets hard,soft,sampled --seeds 0,1,2 \\
        --json bench/results/cifar10h-plain.json

Every run is appended to the JSON file as soon as it ends, so a long grid can be read while it runs.

``--tbal`` runs the TBAL loop instead: pool = the 10k images, the simulated humans give one vote drawn from
each image's CIFAR-10H counts (so their labels are as noisy as one real annotator's), ``hard`` trains on
those votes, ``soft`` / ``sampled`` on the images' full human distributions; validation labels are the drawn
votes too. Coverage, and the error of the auto-labels against the CIFAR-10 labels (and against the votes).

    .venv/bin/python bench/cifar10h.py --tbal --targets hard,soft --confidences softmax,colander \
        --seeds 0 --json bench/results/cifar10h-tbal.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tbal.confidence.kernel import kernel_score
from tbal.config import LoopConfig, ModelConfig, TBALConfig, TrainConfig, config_to_dict, preset
from tbal.data import Dataset, prepare_inputs
from tbal.evaluation import ScoreFunction, auroc, evaluate_model, max_softmax_score
from tbal.loop import run_tbal
from tbal.models import build_model
from tbal.predictions import Predictions, predict
from tbal.training.soft_labels import majority_vote, sample_votes, votes_to_distribution
from tbal.training.train import one_hot
from tbal.uncertainty import train_uncertainty_model

SPLIT_SEED = 2024  # the fixed train / held-out split of the 10k images


def main() -> None:
    args = _parse()
    torch.set_num_threads(args.threads)
    if args.summarize:  # re-print the table of finished runs from one or more JSON files
        finished = [r for path in args.json.split(",") for r in json.loads(Path(path).read_text())["runs"]]
        if args.tbal:
            _tbal_summary(finished)
        else:
            _summary(finished)
        return
    if args.tbal:
        _tbal(args)
        return
    data = np.load(args.data)
    X, _ = prepare_inputs(data["X"])  # (10000, 3, 32, 32) in [0, 1]
    y = data["y"].astype(np.int64)
    counts = data["counts"]
    soft = votes_to_distribution(counts)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    train_rows, test_rows = order[: args.train_size], order[args.train_size :][: args.test_size]
    X_ood = _mnist_as_cifar(args.ood, args.ood_size)
    targets_by_mode = {
        "hard": one_hot(majority_vote(counts[train_rows]), 10),
        "soft": soft[train_rows],
        "sampled": soft[train_rows],
    }
    train_base = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        momentum=0.9,
        weight_decay=args.weight_decay,
        device="cpu",
        standardize_inputs=True,
        augment_shift=args.shift,
        method=args.train_method,
    )
    out = Path(args.json)
    records: list[dict[str, Any]] = json.loads(out.read_text())["runs"] if out.exists() else []
    for seed in _ints(args.seeds):
        for kind in args.models.split(","):
            for mode in args.targets.split(","):
                model_config = _model_config(kind, args)
                train_config = TrainConfig(**{**config_to_dict(train_base), "targets": mode})
                record = _run(
                    model_config, train_config, X, y, soft, train_rows, test_rows, X_ood,
                    targets_by_mode[mode], seed, args.fgsm_points,
                )  # fmt: skip
                record.update(model=kind, targets=mode, seed=seed, method=args.train_method)
                records.append(record)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps({"args": vars(args), "runs": records}, indent=1))
                print(_line(record), flush=True)
    _summary(records)


def _run(
    model_config: ModelConfig,
    train_config: TrainConfig,
    X: np.ndarray,
    y: np.ndarray,
    soft: np.ndarray,
    train_rows: np.ndarray,
    test_rows: np.ndarray,
    X_ood: np.ndarray,
    targets: np.ndarray,
    seed: int,
    fgsm_points: int,
) -> dict[str, Any]:
    model = build_model(model_config, (3, 32, 32), 10, seed=seed)
    start = time.perf_counter()
    train_uncertainty_model(model, X[train_rows], targets, train_config, model_config, seed=seed)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    score: ScoreFunction = _kernel_score if model_config.uncertainty == "duq" else max_softmax_score
    report = evaluate_model(
        model, X[test_rows], y[test_rows], human=soft[test_rows], X_ood=X_ood, score=score,
        fgsm_epsilon=0.005, fgsm_points=fgsm_points,
    )  # fmt: skip
    record: dict[str, Any] = {**report.to_dict(), "train_s": train_s, "eval_s": time.perf_counter() - start}
    record["ood_score"] = "kernel" if model_config.uncertainty == "duq" else "max-softmax"
    if model_config.uncertainty == "duq":  # the softmax of the log-kernels too, for comparison
        record["ood_auroc_max_softmax"] = auroc(
            max_softmax_score(predict(model, X[test_rows])), max_softmax_score(predict(model, X_ood))
        )
    record["model_config"] = config_to_dict(model_config)
    record["train_config"] = config_to_dict(train_config)
    return record


def _tbal(args: argparse.Namespace) -> None:
    """The TBAL loop with single noisy human votes; true error measured against the CIFAR-10 labels."""
    data = np.load(args.data)
    X, _ = prepare_inputs(data["X"])
    truth = data["y"].astype(np.int64)
    counts = data["counts"]
    out = Path(args.json)
    records: list[dict[str, Any]] = json.loads(out.read_text())["runs"] if out.exists() else []
    for seed in _ints(args.seeds):
        votes = sample_votes(counts, np.random.default_rng(10_000 + seed))  # one simulated human an image
        dataset = Dataset(
            X=X, y=votes, kind="image", class_names=tuple(str(c) for c in data["class_names"]),
            soft=votes_to_distribution(counts),
        )  # fmt: skip
        for mode in args.targets.split(","):
            for confidence in args.confidences.split(","):
                config = _tbal_config(args, mode, confidence)
                result = run_tbal(dataset, config, seed=seed)
                auto = result.auto_labeled_index
                record = {
                    "seed": seed,
                    "bound": args.bound,
                    "targets": mode,
                    "confidence": confidence,
                    "coverage": result.coverage,
                    "true_error_vs_cifar10": _error(result.auto_labels, truth[auto]),
                    "error_vs_votes": result.true_error,
                    "vote_accuracy_on_pool": float(np.mean(votes == truth)),
                    "wall_time_s": result.wall_time_s,
                    "config": config_to_dict(config),
                    "rounds": [r.to_dict() for r in result.rounds],
                }
                records.append(record)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps({"args": vars(args), "runs": records}, indent=1, default=float))
                print(
                    f"tbal {mode:>7} {confidence:>9} s{seed}: coverage {record['coverage']:.4f} "
                    f"error vs CIFAR-10 {record['true_error_vs_cifar10']} "
                    f"vs votes {record['error_vs_votes']} "
                    f"({result.wall_time_s:.0f}s)",
                    flush=True,
                )


def _tbal_summary(records: list[dict[str, Any]]) -> None:
    """The ``--tbal`` runs as BENCHMARKS.md tables them: per bound, targets and confidence function, the
    coverage and the true error against CIFAR-10 per seed (%), and the classifier's accuracy on the pool in
    the first and the last round (range over the seeds)."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["bound"], r["targets"], r["confidence"]), []).append(r)
    print("| bound | targets / confidence | coverage %, per seed | true error % | accuracy, first → last |")
    print("|---|---|---|---|---|")
    for (bound, targets, confidence), runs in groups.items():
        runs.sort(key=lambda r: r["seed"])
        coverage = " / ".join(f"{100 * r['coverage']:.2f}" for r in runs)
        errors = " / ".join(
            "–" if r["true_error_vs_cifar10"] is None else f"{100 * r['true_error_vs_cifar10']:.1f}"
            for r in runs
        )
        first = [r["rounds"][0]["classifier_accuracy_pool"] for r in runs]
        last = [r["rounds"][-1]["classifier_accuracy_pool"] for r in runs]
        accuracy = (
            f"{100 * min(first):.1f}–{100 * max(first):.1f} → {100 * min(last):.1f}–{100 * max(last):.1f}"
        )
        print(f"| {bound} | {targets} / {confidence} | {coverage} | {errors} | {accuracy} |")


def _error(labels: np.ndarray, truth: np.ndarray) -> float | None:
    return float(np.mean(labels != truth)) if labels.size else None


def _tbal_config(args: argparse.Namespace, mode: str, confidence: str) -> TBALConfig:
    base = preset("cifar10-paper")
    return TBALConfig(
        loop=LoopConfig(
            label_budget=args.tbal_budget, seed_size=args.tbal_seed_size, batch_size=args.tbal_batch,
            validation_size=args.tbal_validation,
        ),
        model=ModelConfig(name="resnet", resnet_blocks=args.blocks),
        train=TrainConfig(
            targets=mode, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
            weight_decay=args.weight_decay, device="cpu", standardize_inputs=True, augment_shift=args.shift,
        ),
        confidence=dataclasses.replace(base.confidence, name=confidence),
        thresholds=dataclasses.replace(base.thresholds, bound=args.bound),
        query=base.query,
    )  # fmt: skip


def _kernel_score(preds: Predictions) -> np.ndarray:
    return kernel_score(preds.logits)


def _model_config(kind: str, args: argparse.Namespace) -> ModelConfig:
    base: dict[str, Any] = {"name": "resnet", "resnet_blocks": args.blocks}
    if kind == "plain":
        return ModelConfig(**base)
    if kind == "mc-dropout":
        return ModelConfig(**base, uncertainty="mc-dropout", dropout=0.3, mc_passes=args.mc_passes)
    if kind == "sngp":
        return ModelConfig(**base, uncertainty="sngp")
    if kind == "duq":
        return ModelConfig(**base, uncertainty="duq", duq_gradient_penalty=args.duq_penalty)
    raise SystemExit(f"unknown model kind {kind!r}; use plain, mc-dropout, sngp, duq")


def _mnist_as_cifar(path: str, n: int) -> np.ndarray:
    """The first n MNIST test digits as (n, 3, 32, 32) float32 in [0, 1]: bilinear 28 → 32, grey → RGB."""
    digits = np.load(path)["X"][:n].astype(np.float32) / 255.0  # (n, 28, 28)
    x = F.interpolate(torch.from_numpy(digits)[:, None], size=(32, 32), mode="bilinear", align_corners=False)
    return x.clamp(0.0, 1.0).repeat(1, 3, 1, 1).numpy()


def _line(r: dict[str, Any]) -> str:
    return (
        f"{r['model']:>10} {r['targets']:>7} s{r['seed']}: acc {r['accuracy']:.4f} ece {r['ece']:.4f} "
        f"nll {r['nll']:.3f} ce-human {r['human_cross_entropy']:.3f} sba {r['second_best_accuracy']:.3f} "
        f"ood {r['ood_auroc']:.3f} fgsm-drop {r['fgsm_drop']:.4f} train {r['train_s']:.0f}s"
    )


def _summary(records: list[dict[str, Any]]) -> None:
    keys = ("accuracy", "ece", "nll", "human_cross_entropy", "second_best_accuracy", "ood_auroc", "fgsm_drop")
    print("mean ± sd over seeds (sd with ddof 1)")
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in records:  # runs from before --train-method are vanilla
        groups.setdefault((r["model"], r.get("method", "vanilla"), r["targets"]), []).append(r)
    print("| model | train method | targets | seeds | " + " | ".join(keys) + " |")
    for (kind, method, mode), rs in groups.items():
        cells = []
        for k in keys:
            v = np.array([r[k] for r in rs], dtype=float)
            cells.append(f"{v.mean():.4f} ± {v.std(ddof=1):.4f}" if len(v) > 1 else f"{v.mean():.4f}")
        print(f"| {kind} | {method} | {mode} | {len(rs)} | " + " | ".join(cells) + " |")


def _ints(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/cifar10_test_cifar10h.npz")
    p.add_argument("--ood", default="../shared/data/mnist_test.npz")
    p.add_argument("--models", default="plain", help="comma-separated: plain, mc-dropout, sngp, duq")
    p.add_argument("--targets", default="hard,soft,sampled")
    p.add_argument("--seeds", default="0")
    p.add_argument("--train-size", type=int, default=4000)
    p.add_argument("--test-size", type=int, default=2000)
    p.add_argument("--ood-size", type=int, default=1000)
    p.add_argument("--fgsm-points", type=int, default=500)
    p.add_argument(
        "--blocks", type=int, default=1, help="ResNet blocks per stage: 1 = ResNet-8, 3 = ResNet-20"
    )
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument(
        "--train-method", default="vanilla", help="train.method of the classifier (e.g. mixup, cutmix)"
    )
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--shift", type=int, default=4, help="random translations of up to this many pixels")
    p.add_argument("--mc-passes", type=int, default=10)
    p.add_argument("--duq-penalty", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tbal", action="store_true", help="run the TBAL loop (see the module docstring)")
    p.add_argument("--confidences", default="softmax,colander", help="--tbal: confidence functions")
    p.add_argument("--bound", default="valid", help="--tbal: threshold bound (valid, paper, hoeffding)")
    p.add_argument("--tbal-budget", type=int, default=2000, help="--tbal: human training labels N_t")
    p.add_argument("--tbal-seed-size", type=int, default=1000)
    p.add_argument("--tbal-batch", type=int, default=500)
    p.add_argument("--tbal-validation", type=int, default=2000)
    p.add_argument(
        "--summarize",
        action="store_true",
        help="print the table of --json (comma-separated; with --tbal, its runs')",
    )
    p.add_argument("--json", required=True)
    return p.parse_args()


if __name__ == "__main__":
    main()
