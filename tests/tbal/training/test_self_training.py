"""Transductive self-training: which points get pseudo-labels, and which rounds train twice."""

from __future__ import annotations

import numpy as np
import pytest

import tbal.loop as loop
from tbal.config import ConfigError, TBALConfig, TrainConfig, with_overrides
from tbal.data import make_dataset
from tbal.loop import run_tbal
from tbal.models import Classifier
from tbal.predictions import Predictions, predict
from tbal.training.self_training import pseudo_label_choice
from tbal.training.train import one_hot
from tests.tbal.synthetic import blobs_8d, three_round_mlp


def _predictions(logits: np.ndarray) -> Predictions:
    return Predictions(logits.astype(np.float32), np.zeros((logits.shape[0], 2), dtype=np.float32))


def test_each_predicted_class_keeps_its_share_of_most_confident_points() -> None:
    # class 0: confidences rise with the index; class 1: four points, one very sure
    logits = np.array([[1, 0], [2, 0], [3, 0], [4, 0], [0, 1], [0, 9], [0, 2], [0, 3]], dtype=float)
    index, labels = pseudo_label_choice(_predictions(logits), 0.5, 100, np.random.default_rng(0))
    assert index.tolist() == [2, 3, 5, 7]
    assert labels.tolist() == [0, 0, 1, 1]


def test_the_choice_depends_on_a_point_alone_not_on_where_it_sits() -> None:
    """Validity rests on treating a validation point exactly as a pool point: a point's place in the
    unlabeled array (pool part or validation part) cannot change whether it is chosen."""
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(400, 4)) * 3
    order = rng.permutation(400)
    index, labels = pseudo_label_choice(_predictions(logits), 0.7, 10_000, np.random.default_rng(0))
    moved, moved_labels = pseudo_label_choice(
        _predictions(logits[order]), 0.7, 10_000, np.random.default_rng(0)
    )
    assert sorted(order[moved].tolist()) == index.tolist()
    assert dict(zip(order[moved].tolist(), moved_labels.tolist(), strict=True)) == dict(
        zip(index.tolist(), labels.tolist(), strict=True)
    )


def test_the_limit_takes_a_random_subset_of_the_chosen() -> None:
    logits = np.random.default_rng(1).normal(size=(1000, 3))
    full, _ = pseudo_label_choice(_predictions(logits), 0.9, 10_000, np.random.default_rng(0))
    capped, labels = pseudo_label_choice(_predictions(logits), 0.9, 100, np.random.default_rng(0))
    assert capped.size == 100 and labels.size == 100
    assert set(capped.tolist()) <= set(full.tolist())


def test_share_zero_chooses_nothing() -> None:
    index, labels = pseudo_label_choice(_predictions(np.eye(3)), 0.0, 10, np.random.default_rng(0))
    assert index.size == 0 and labels.size == 0


@pytest.mark.parametrize(
    "field, value",
    [("pseudo_label_share", 1.5), ("pseudo_label_epochs", 0), ("pseudo_label_targets", "probs")],
)
def test_bad_settings_are_refused_by_name(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"train.{field}"):
        with_overrides(TBALConfig(), {f"train.{field}": value})


def _config(**overrides: object) -> TBALConfig:
    base = {"train.epochs": 3, "train.pseudo_label_share": 0.8, "train.pseudo_label_epochs": 2}
    return three_round_mlp(**{**base, **overrides})


def _count_trainings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of rows of every training a run starts, in order."""
    sizes: list[int] = []
    real = loop.train_uncertainty_model

    def spy(model: object, X: np.ndarray, *args: object, **kwargs: object) -> object:
        sizes.append(int(X.shape[0]))
        return real(model, X, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "train_uncertainty_model", spy)
    return sizes


def test_only_the_rounds_that_may_auto_label_train_a_second_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under the final δ schedule only the last planned round certifies, so only it pays the second
    training, on the human labels plus pseudo-labels of the pool and the validation set."""
    sizes = _count_trainings(monkeypatch)
    X, y = blobs_8d(600)
    result = run_tbal(make_dataset(X, y), _config(), seed=0)
    planned = len(result.rounds)
    deltas = [r.delta_round for r in result.rounds]
    assert deltas[:-1] == [0.0] * (planned - 1) and deltas[-1] > 0
    assert len(sizes) == planned + 1
    humans, second = sizes[-2], sizes[-1]
    # most of the last round's unlabeled points (pool and validation) join the human labels
    assert second > humans + 0.7 * (600 - humans - 200)


def test_off_by_default_and_under_the_paper_rule_every_round_self_trains(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sizes = _count_trainings(monkeypatch)
    X, y = blobs_8d(600)
    off = run_tbal(make_dataset(X, y), _config(**{"train.pseudo_label_share": 0.0}), seed=0)
    assert len(sizes) == len(off.rounds)
    sizes.clear()
    paper = run_tbal(make_dataset(X, y), _config(**{"thresholds.bound": "paper"}), seed=0)
    assert len(sizes) == 2 * len(paper.rounds)


def _small_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n grey 8×8 images in [0, 1] of 3 classes: a bright row, column or diagonal, with noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    X = rng.normal(0.0, 0.2, size=(n, 1, 8, 8)).astype(np.float32)
    X[y == 0, 0, 3, :] += 1.0
    X[y == 1, 0, :, 3] += 1.0
    X[:, 0, np.arange(8), np.arange(8)] += (y == 2)[:, None].astype(np.float32)
    return np.clip(X, 0.0, 1.0), y


@pytest.mark.parametrize(("network", "self_trains"), [("auto", True), ("mlp", False)])
def test_without_a_setting_lenet5_self_trains_and_the_mlp_does_not(
    monkeypatch: pytest.MonkeyPatch, network: str, self_trains: bool
) -> None:
    """pseudo_label_share unset: LeNet-5 (``auto`` on images) takes mnist-paper's 0.9 and trains twice in
    the certifying round; an MLP takes the reference training's 0 and trains once a round."""
    sizes = _count_trainings(monkeypatch)
    X, y = _small_images(600)
    if network == "mlp":
        X = X.reshape(len(X), -1)
    overrides = {"model.name": network, "train.pseudo_label_share": None, "train.augment_shift": 0}
    result = run_tbal(make_dataset(X, y), _config(**overrides), seed=0)
    assert len(sizes) == len(result.rounds) + (1 if self_trains else 0)


def test_a_round_trains_the_second_classifier_on_pool_and_validation_points_alike(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The second training sees the human rows, then exactly the pseudo-labeled rows that the choice over
    [pool; validation] picks, with their predicted labels: validation points among them."""
    calls: list[tuple[Classifier, np.ndarray, np.ndarray]] = []
    real = loop.train_uncertainty_model

    def spy(model: Classifier, X: np.ndarray, targets: np.ndarray, *args: object, **kwargs: object) -> object:
        calls.append((model, X, targets))
        return real(model, X, targets, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "train_uncertainty_model", spy)
    X, y = blobs_8d(600)
    inputs = loop.RoundInput(
        X_train=X[:100],
        targets_train=one_hot(y[:100], 3),
        X_val=X[100:300],
        y_val=y[100:300],
        X_pool=X[300:],
        num_classes=3,
    )
    config = _config()
    loop.run_round(inputs, config, seed=4)
    (first, _, _), (_, X_second, T_second) = calls
    unlabeled = np.concatenate([inputs.X_pool, inputs.X_val])
    index, labels = pseudo_label_choice(
        predict(first, unlabeled),
        0.8,
        20_000,
        np.random.default_rng([4, 1]),  # type: ignore[arg-type]
    )
    assert np.array_equal(X_second, np.concatenate([inputs.X_train, unlabeled[index]]))
    assert np.array_equal(T_second[100:].argmax(axis=1), labels)
    assert np.any(index >= inputs.X_pool.shape[0])  # validation points are pseudo-labeled too


def test_soft_pseudo_labels_are_the_first_classifiers_softmax_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """``pseudo_label_targets`` soft: the second classifier fits the first one's whole softmax on the chosen
    points (as distributions: ``targets`` soft), and the human rows as the first training read them."""
    calls: list[tuple[Classifier, np.ndarray, np.ndarray, TrainConfig]] = []
    real = loop.train_uncertainty_model

    def spy(
        model: Classifier,
        X: np.ndarray,
        targets: np.ndarray,
        train: TrainConfig,
        *args: object,
        **kwargs: object,
    ) -> object:
        calls.append((model, X, targets, train))
        return real(model, X, targets, train, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "train_uncertainty_model", spy)
    X, y = blobs_8d(600)
    soft_humans = np.full((100, 3), 0.1, dtype=np.float32)
    soft_humans[np.arange(100), y[:100]] = 0.8  # soft human labels, read as their top class (targets hard)
    inputs = loop.RoundInput(
        X_train=X[:100],
        targets_train=soft_humans,
        X_val=X[100:300],
        y_val=y[100:300],
        X_pool=X[300:],
        num_classes=3,
    )
    loop.run_round(inputs, _config(**{"train.pseudo_label_targets": "soft"}), seed=4)
    (first, _, _, first_train), (_, _, T_second, second_train) = calls
    unlabeled = np.concatenate([inputs.X_pool, inputs.X_val])
    preds = predict(first, unlabeled)
    index, _ = pseudo_label_choice(preds, 0.8, 20_000, np.random.default_rng([4, 1]))
    assert first_train.targets == "hard" and second_train.targets == "soft"
    assert second_train.epochs == 2
    assert np.array_equal(T_second[:100], one_hot(y[:100], 3))
    assert np.allclose(T_second[100:], preds.probs[index], atol=1e-6)
    assert not np.allclose(T_second[100:].max(axis=1), 1.0)  # distributions, not one-hot rows


def test_a_confidence_function_learned_on_d_cal_keeps_the_first_classifier(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Colander learns from D_cal which predictions are right; after self-training the classifier was fitted
    to D_cal's own pseudo-labels, so Colander rounds train once (measured: it lost coverage)."""
    sizes = _count_trainings(monkeypatch)
    X, y = blobs_8d(600)
    config = _config(**{"confidence.name": "colander", "confidence.colander.epochs": 2})
    result = run_tbal(make_dataset(X, y), config, seed=0)
    assert len(sizes) == len(result.rounds)
