"""What ranks the hard image cases' points better, on one classifier and the true labels (issue 11).

The valid bound certifies the top of a ranking; how much of a pool one certificate can reach is set by
how far down that ranking the error stays at 2-3 % (the label-knowing "oracle" coverage at ≤ e error).
Each subcommand trains ``mnist-paper``'s LeNet-5 on ``--labels`` random images of a case written by
``bench/hard_mnist.py`` and prints, on the rest, the accuracy, the oracle coverage at ≤ 2 / 3 / 5 %
error of the top softmax probability and its AURC (the mean error over every cut), for:

- ``tta``: the softmax averaged over shifted copies of each image (5, 9 or 25 whole-pixel shifts);
- ``self-training``: the self-training round of ``mnist-paper`` (30 epochs on the human labels and the
  pseudo-labels of each class's most confident 90 %), then the same again from its classifier, and again;
- ``self-training-tta``: the self-trained classifier scored with and without 9 shifts, and trained on
  pseudo-labels chosen from the shifted scores;
- ``soft-pseudo-labels``: self-training on the first classifier's probabilities instead of its one-hot
  predictions (distillation);
- ``colander``: Colander fitted on 150 labeled points, with the first classifier, with the self-trained
  one, and with a self-trained one that never saw those 150 points (its pseudo-labels leave them out).

``digits-shifts`` (``--data ../shared/data/sklearn_digits.npz``, no seeds) is apart: LeNet-5's accuracy
on sklearn's 8×8 digits (600 labels, 500 scored, as tests/tbal/training/test_train.py's digits test) with
0 / 1 / 2-pixel shifts, raw or standardised, after a short training (8 epochs at lr 0.1) and after the
default one (why LeNet-5's default shift is scaled down on small images).

Usage (write the cases first: ``bench/hard_mnist.py write``):
    .venv/bin/python bench/image_score_probe.py tta --data /tmp/harder_mnist.npz --seeds 10,11
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tbal.confidence import make_confidence
from tbal.config import ConfidenceConfig, ModelConfig, TrainConfig, preset, with_overrides
from tbal.data import prepare_inputs
from tbal.metrics import label_knowing_coverage
from tbal.models import build_model
from tbal.networks import Classifier
from tbal.predictions import Predictions, predict
from tbal.training.self_training import pseudo_label_choice
from tbal.training.train import one_hot, train_classifier

# mnist-paper as it was when these probes ran (thirteenth session): LeNet-5, ResNet-8 since the sixteenth
CONFIG = with_overrides(preset("mnist-paper"), {"model.name": "lenet5"})
SHIFTS = {
    5: [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)],
    9: [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)],
    25: [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)],
}
N_CAL = 150


def aurc(score: np.ndarray, correct: np.ndarray) -> float:
    """Area under the risk-coverage curve: the mean error of the top-ranked part over every cut."""
    order = np.argsort(-score, kind="stable")
    return float(np.mean(np.cumsum(~correct[order]) / np.arange(1, order.size + 1)))


def show(case: str, seed: int, tag: str, score: np.ndarray, correct: np.ndarray) -> None:
    oracles = " ".join(f"@{e} {100 * label_knowing_coverage(score, correct, e / 100):.1f}" for e in (2, 3, 5))
    print(
        f"{case} seed {seed} {tag:22s} acc {100 * correct.mean():.1f} oracle {oracles} "
        f"aurc {100 * aurc(score, correct):.2f}",
        flush=True,
    )


def shifted(X: np.ndarray, dy: int, dx: int, pad: int = 2) -> np.ndarray:
    """Images (n, C, H, W) moved by (dy, dx) whole pixels, zeros shifted in (the background)."""
    h, w = X.shape[2], X.shape[3]
    padded = F.pad(torch.from_numpy(X), (pad, pad, pad, pad))
    return padded[:, :, pad + dy : pad + dy + h, pad + dx : pad + dx + w].numpy().copy()


def shifted_probs(model: Classifier, X: np.ndarray, shifts: int) -> np.ndarray:
    """The softmax averaged over ``shifts`` shifted copies of each image (test-time augmentation)."""
    return np.mean([predict(model, shifted(X, dy, dx)).probs for dy, dx in SHIFTS[shifts]], axis=0)


def trained(X: np.ndarray, distributions: np.ndarray, seed: int, **changes: Any) -> Classifier:
    """mnist-paper's LeNet-5 trained on X and target distributions (n, 10), with ``changes`` to its
    training."""
    model = build_model(CONFIG.model, input_shape=X.shape[1:], num_classes=10)
    train_classifier(model, X, distributions, dataclasses.replace(CONFIG.train, **changes), seed=seed)
    return model


def self_trained(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_unlabeled: np.ndarray,
    probs: np.ndarray,
    seed: int,
    *,
    soft: bool = False,
) -> Classifier:
    """mnist-paper's self-training round: a fresh classifier on the human labels and the pseudo-labels of
    each predicted class's most confident 90 % of ``X_unlabeled`` (one-hot, or with ``soft`` the
    probabilities themselves), 30 epochs."""
    choice = Predictions(np.log(probs + 1e-12).astype(np.float32), np.zeros((len(probs), 1), np.float32))
    index, labels = pseudo_label_choice(choice, 0.9, 20_000, np.random.default_rng([seed, 1]))
    pseudo = probs[index].astype(np.float32) if soft else one_hot(labels, 10).astype(np.float32)
    X = np.concatenate([X_train, X_unlabeled[index]])
    targets = np.concatenate([one_hot(y_train, 10), pseudo])
    return trained(
        X, targets, seed, epochs=CONFIG.train.pseudo_label_epochs, targets="soft" if soft else "hard"
    )


def top(probs: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return probs.max(axis=1), probs.argmax(axis=1) == y


def probe_tta(case: str, seed: int, X: np.ndarray, y: np.ndarray, n: int) -> None:
    train, rest = split(len(y), n, seed)
    model = trained(X[train], one_hot(y[train], 10), seed)
    show(case, seed, "plain", *top(predict(model, X[rest]).probs, y[rest]))
    for shifts in SHIFTS:
        show(case, seed, f"tta{shifts}", *top(shifted_probs(model, X[rest], shifts), y[rest]))


def probe_self_training(case: str, seed: int, X: np.ndarray, y: np.ndarray, n: int) -> None:
    train, rest = split(len(y), n, seed)
    model = trained(X[train], one_hot(y[train], 10), seed)
    show(case, seed, "plain", *top(predict(model, X[rest]).probs, y[rest]))
    for iteration in (1, 2, 3):
        model = self_trained(X[train], y[train], X[rest], predict(model, X[rest]).probs, seed)
        show(case, seed, f"self-trained x{iteration}", *top(predict(model, X[rest]).probs, y[rest]))


def probe_self_training_tta(case: str, seed: int, X: np.ndarray, y: np.ndarray, n: int) -> None:
    train, rest = split(len(y), n, seed)
    first = trained(X[train], one_hot(y[train], 10), seed)
    plain, averaged = predict(first, X[rest]).probs, shifted_probs(first, X[rest], 9)
    show(case, seed, "plain", *top(plain, y[rest]))
    show(case, seed, "plain, tta9", *top(averaged, y[rest]))
    second = self_trained(X[train], y[train], X[rest], plain, seed)
    show(case, seed, "self-trained", *top(predict(second, X[rest]).probs, y[rest]))
    show(case, seed, "self-trained, tta9", *top(shifted_probs(second, X[rest], 9), y[rest]))
    chosen_shifted = self_trained(X[train], y[train], X[rest], averaged, seed)
    show(case, seed, "on tta9's choice, tta9", *top(shifted_probs(chosen_shifted, X[rest], 9), y[rest]))


def probe_soft(case: str, seed: int, X: np.ndarray, y: np.ndarray, n: int) -> None:
    train, rest = split(len(y), n, seed)
    first = trained(X[train], one_hot(y[train], 10), seed)
    plain = predict(first, X[rest]).probs
    show(case, seed, "plain", *top(plain, y[rest]))
    for soft in (False, True):
        model = self_trained(X[train], y[train], X[rest], plain, seed, soft=soft)
        show(
            case,
            seed,
            "soft pseudo-labels" if soft else "one-hot pseudo-labels",
            *top(predict(model, X[rest]).probs, y[rest]),
        )


def probe_colander(case: str, seed: int, X: np.ndarray, y: np.ndarray, n: int) -> None:
    """Colander against softmax, D_cal the N_CAL points after the training labels; scored on the rest."""
    order = np.random.default_rng(seed).permutation(len(y))
    train, cal, scored = order[:n], order[n : n + N_CAL], order[n + N_CAL :]

    def both(tag: str, model: Classifier) -> None:
        preds = predict(model, X[scored])
        show(case, seed, f"{tag}, softmax", *top(preds.probs, y[scored]))
        colander = make_confidence(ConfidenceConfig(name="colander"), 10)
        colander.fit(predict(model, X[cal]), y[cal], seed=seed)
        show(case, seed, f"{tag}, colander", colander.score(preds), preds.predicted == y[scored])

    first = trained(X[train], one_hot(y[train], 10), seed)
    both("plain", first)
    for tag, unlabeled in (("self-trained", order[n:]), ("self-trained, D_cal out", scored)):
        probs = predict(first, X[unlabeled]).probs
        both(tag, self_trained(X[train], y[train], X[unlabeled], probs, seed))


def digits_shifts(X: np.ndarray, y: np.ndarray) -> None:
    """LeNet-5 on 600 of the digits, scored on the next 500, for each shift and standardisation."""
    order = np.random.default_rng(0).permutation(len(y))
    train, scored = order[:600], order[600:1100]
    trainings = {
        "8 epochs at lr 0.1": {"epochs": 8, "batch_size": 64, "lr": 0.1, "weight_decay": 1e-4},
        "the default training": {},
    }
    for name, changes in trainings.items():
        for standardize, shift in ((False, 0), (True, 0), (False, 1), (False, 2), (True, 2)):
            model = build_model(ModelConfig(), X.shape[1:], 10)
            config = TrainConfig(device="cpu", standardize_inputs=standardize, augment_shift=shift, **changes)
            train_classifier(model, X[train], one_hot(y[train], 10), config, seed=0)
            accuracy = np.mean(predict(model, X[scored]).predicted == y[scored])
            shown = "standardised" if standardize else "raw"
            print(f"digits, {name}, {shown}, shift {shift}: accuracy {accuracy:.3f}", flush=True)


def split(n_points: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n_points)
    return order[:n], order[n:]


PROBES: dict[str, Callable[[str, int, np.ndarray, np.ndarray, int], None]] = {
    "tta": probe_tta,
    "self-training": probe_self_training,
    "self-training-tta": probe_self_training_tta,
    "soft-pseudo-labels": probe_soft,
    "colander": probe_colander,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("probe", choices=[*sorted(PROBES), "digits-shifts"])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--labels", type=int, default=500)
    parser.add_argument("--seeds", default="10,11")
    args = parser.parse_args()
    torch.set_num_threads(1)
    archive = np.load(args.data)
    X, _ = prepare_inputs(archive["X"])
    y = archive["y"].astype(np.int64)
    if args.probe == "digits-shifts":
        digits_shifts(X, y)
        return
    for seed in (int(s) for s in args.seeds.split(",")):
        PROBES[args.probe](args.data.name, seed, X, y, args.labels)


if __name__ == "__main__":
    main()
