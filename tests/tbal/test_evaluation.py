"""The evaluation report against independent references (scikit-learn, torchmetrics, brute force) and
FGSM's mechanism on a small trained network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torchmetrics.classification import MulticlassCalibrationError

from tbal.config import ModelConfig, TrainConfig
from tbal.errors import TBALInputError
from tbal.evaluation import (
    auroc,
    evaluate_model,
    fgsm_attack,
    human_cross_entropy,
    max_softmax_score,
    second_best_accuracy,
)
from tbal.models import Classifier, build_model
from tbal.predictions import predict
from tbal.training.train import one_hot, train_classifier


def test_auroc_matches_sklearn_and_brute_force_with_ties() -> None:
    rng = np.random.default_rng(0)
    pos = np.round(rng.normal(1.0, 1.0, 300), 1)  # rounding makes many ties
    neg = np.round(rng.normal(0.0, 1.0, 200), 1)
    labels = np.r_[np.ones(pos.size), np.zeros(neg.size)]
    expected = roc_auc_score(labels, np.r_[pos, neg])
    brute = np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))
    assert auroc(pos, neg) == pytest.approx(expected, abs=1e-12)
    assert auroc(pos, neg) == pytest.approx(brute, abs=1e-12)
    assert auroc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert auroc(np.array([0.5]), np.array([0.5])) == 0.5
    with pytest.raises(TBALInputError, match="both positives and negatives"):
        auroc(np.array([1.0]), np.array([]))


def test_human_cross_entropy_and_second_best_hand_examples() -> None:
    probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.4, 0.4, 0.2]])
    human = np.array([[0.5, 0.5, 0.0], [0.0, 0.7, 0.3], [0.6, 0.3, 0.1]])
    expected = np.mean(
        [
            -(0.5 * np.log(0.6) + 0.5 * np.log(0.3)),
            -(0.7 * np.log(0.5) + 0.3 * np.log(0.3)),
            -(0.6 * np.log(0.4) + 0.3 * np.log(0.4) + 0.1 * np.log(0.2)),
        ]
    )
    assert human_cross_entropy(probs, human) == pytest.approx(expected, abs=1e-12)
    # item 0: human top two tied → skipped; item 1: humans 1 > 2 > 0, model's second is 2 → hit;
    # item 2: humans 0 > 1 > 2, model ranks 0, 1 (stable tie) → second is 1 → hit
    assert second_best_accuracy(probs, human) == (1.0, 2)
    probs_miss = probs[:, [0, 2, 1]]
    acc, items = second_best_accuracy(probs_miss, human)
    assert items == 2 and acc < 1.0


def test_human_cross_entropy_with_one_hot_humans_is_the_nll() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(50, 4))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = rng.integers(0, 4, 50)
    nll = torch.nn.functional.nll_loss(torch.log(torch.from_numpy(probs)), torch.from_numpy(y)).item()
    assert human_cross_entropy(probs, one_hot(y, 4)) == pytest.approx(nll, rel=1e-9)


def _two_blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian blobs in [0, 1]² around (0.35, 0.5) and (0.65, 0.5), sd 0.08, clipped."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    centres = np.array([[0.35, 0.5], [0.65, 0.5]])
    X = np.clip(centres[y] + rng.normal(0.0, 0.08, (n, 2)), 0.0, 1.0).astype(np.float32)
    return X, y.astype(np.int64)


def _trained_mlp(X: np.ndarray, y: np.ndarray, standardize: bool) -> Classifier:
    torch.set_num_threads(1)
    model = build_model(ModelConfig(name="mlp", hidden=(16,), activation="tanh"), (2,), 2, seed=0)
    config = TrainConfig(epochs=30, batch_size=32, lr=0.1, device="cpu", standardize_inputs=standardize)
    return train_classifier(model, X, one_hot(y, 2), config, seed=0)


@pytest.mark.parametrize("standardize", [False, True])
def test_fgsm_moves_each_input_by_epsilon_and_raises_the_loss(standardize: bool) -> None:
    X, y = _two_blobs(400, seed=2)
    model = _trained_mlp(X, y, standardize)
    eps = 0.05
    X_adv = fgsm_attack(model, X, y, eps)
    step = np.abs(X_adv - X)
    inside = np.abs(X - 0.5) < 0.5 - eps  # no clipping at the [0, 1] border
    # the step is ε on the [0, 1] scale, whatever the model's standardisation (sd ≈ 0.17 here)
    np.testing.assert_allclose(step[inside], eps, atol=1e-6)
    assert step.max() <= eps + 1e-6
    clean = predict(model, X)
    adv = predict(model, X_adv)
    ce = torch.nn.functional.cross_entropy
    loss_clean = ce(torch.from_numpy(clean.logits), torch.from_numpy(y), reduction="none").numpy()
    loss_adv = ce(torch.from_numpy(adv.logits), torch.from_numpy(y), reduction="none").numpy()
    assert np.mean(loss_adv > loss_clean) > 0.99
    acc_clean, acc_adv = np.mean(clean.predicted == y), np.mean(adv.predicted == y)
    assert acc_clean > 0.9 and acc_adv < acc_clean - 0.05
    # a random-sign perturbation of the same size hurts far less than the gradient's sign
    rng = np.random.default_rng(3)
    X_rand = np.clip(X + eps * rng.choice([-1.0, 1.0], X.shape), 0, 1).astype(np.float32)
    assert np.mean(predict(model, X_rand).predicted == y) > acc_adv + 0.03


def test_report_matches_independent_references() -> None:
    X, y = _two_blobs(500, seed=4)
    model = _trained_mlp(X[:300], y[:300], standardize=True)
    X_test, y_test = X[300:], y[300:]
    rng = np.random.default_rng(5)
    human = rng.dirichlet(np.ones(2) * 0.5, size=y_test.size)
    X_ood = rng.uniform(0.0, 1.0, (150, 2)).astype(np.float32)
    report = evaluate_model(model, X_test, y_test, human=None, X_ood=X_ood, fgsm_epsilon=0.01)
    preds = predict(model, X_test)
    probs = torch.from_numpy(preds.probs)
    ece_ref = MulticlassCalibrationError(num_classes=2, n_bins=10, norm="l1")(probs, torch.from_numpy(y_test))
    assert report.ece == pytest.approx(float(ece_ref), abs=1e-5)
    assert report.accuracy == pytest.approx(np.mean(preds.predicted == y_test))
    nll_ref = torch.nn.functional.cross_entropy(torch.from_numpy(preds.logits), torch.from_numpy(y_test))
    assert report.nll == pytest.approx(float(nll_ref), rel=1e-4)
    s_in, s_out = max_softmax_score(preds), max_softmax_score(predict(model, X_ood))
    labels = np.r_[np.ones(s_in.size), np.zeros(s_out.size)]
    assert report.ood_auroc == pytest.approx(roc_auc_score(labels, np.r_[s_in, s_out]), abs=1e-12)
    assert report.fgsm_clean_accuracy is not None and report.fgsm_accuracy is not None  # fgsm_epsilon given
    assert report.fgsm_drop == pytest.approx(report.fgsm_clean_accuracy - report.fgsm_accuracy)
    assert report.fgsm_points == y_test.size and report.human_cross_entropy is None
    with_humans = evaluate_model(model, X_test, y_test, human=human, fgsm_epsilon=None)
    assert with_humans.human_cross_entropy == pytest.approx(human_cross_entropy(preds.probs, human))
    assert with_humans.second_best_accuracy is None and with_humans.fgsm_drop is None
