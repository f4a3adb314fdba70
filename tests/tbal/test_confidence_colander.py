"""Colander: it learns what max-softmax misses, scores ŷ only, is reproducible per seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from tbal.confidence import Colander, SoftmaxConfidence
from tbal.config import ColanderConfig
from tbal.errors import DataError, TBALInputError
from tbal.predictions import Predictions

K = 3


def _hidden_direction(n: int, rng: np.random.Generator, d: int = 8) -> tuple[Predictions, np.ndarray]:
    """Logits ~ N(0, 1.5²) fix ŷ and the max softmax; whether the label is ŷ depends only on the feature
    of the predicted class: P(y = ŷ) = sigmoid(4·f[ŷ]), otherwise y is another class. The max softmax
    carries no information about correctness (AUROC ≈ 0.5); a good confidence function must use f."""
    logits = rng.normal(size=(n, K)) * 1.5
    features = rng.normal(size=(n, d))
    predicted = logits.argmax(axis=1)
    correct = rng.random(n) < 1.0 / (1.0 + np.exp(-4.0 * features[np.arange(n), predicted]))
    y = np.where(correct, predicted, (predicted + rng.integers(1, K, n)) % K)
    return Predictions(logits.astype(np.float32), features.astype(np.float32)), y.astype(np.int64)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    "config", [ColanderConfig.paper_network(epochs=100), ColanderConfig()], ids=["paper-network", "default"]
)
def test_colander_ranks_correct_points_above_wrong_ones_where_softmax_cannot(
    seed: int, config: ColanderConfig
) -> None:
    rng = np.random.default_rng(seed)
    cal, y_cal = _hidden_direction(300, rng)
    test, y_test = _hidden_direction(3000, rng)
    correct = test.predicted == y_test
    softmax_auc = roc_auc_score(correct, SoftmaxConfidence(K).fit(cal, y_cal).score(test))
    colander = Colander(K, config).fit(cal, y_cal, seed=seed)
    colander_auc = roc_auc_score(correct, colander.score(test))
    assert abs(softmax_auc - 0.5) < 0.05
    assert colander_auc > softmax_auc + 0.15, (colander_auc, softmax_auc)


def _forward_at(fn: Colander, preds: Predictions, classes: np.ndarray) -> np.ndarray:
    """g(x)[classes] recomputed in torch from the stored weights (independent of Colander._score)."""
    z = torch.from_numpy(np.concatenate([preds.logits, preds.features], axis=1).astype(np.float64))
    z = (z - torch.from_numpy(fn.mean)) / torch.from_numpy(fn.scale)
    hidden = torch.tanh(z @ torch.from_numpy(fn.w1) + torch.from_numpy(fn.b1))
    skip = fn.config.logit_skip * torch.from_numpy(preds.logits.astype(np.float64))
    g = torch.softmax(skip + hidden @ torch.from_numpy(fn.w2) + torch.from_numpy(fn.b2), dim=1)
    return g[torch.arange(len(preds)), torch.from_numpy(classes)].numpy()


@pytest.mark.parametrize("standardize", [False, True])
def test_score_is_g_at_the_classifiers_prediction_not_at_the_label(standardize: bool) -> None:
    rng = np.random.default_rng(3)
    cal, y = _hidden_direction(200, rng)
    fn = Colander(K, ColanderConfig(epochs=30), standardize=standardize).fit(cal, y, seed=0)
    scores = fn.score(cal)
    np.testing.assert_allclose(scores, _forward_at(fn, cal, cal.predicted), rtol=1e-9)
    wrong = cal.predicted != y
    assert wrong.sum() > 20
    # The reference code once scored with the true label; on the wrong points that differs.
    assert not np.allclose(scores[wrong], _forward_at(fn, cal, y)[wrong], atol=1e-3)
    if not standardize:
        np.testing.assert_array_equal(fn.mean, 0.0)
        np.testing.assert_array_equal(fn.scale, 1.0)


def test_same_seed_same_model_other_seed_other_model() -> None:
    rng = np.random.default_rng(4)
    cal, y = _hidden_direction(150, rng)
    config = ColanderConfig(epochs=20)
    first = Colander(K, config).fit(cal, y, seed=7)
    second = Colander(K, config).fit(cal, y, seed=7)
    other = Colander(K, config).fit(cal, y, seed=8)
    np.testing.assert_array_equal(first.w1, second.w1)
    np.testing.assert_array_equal(first.score(cal), second.score(cal))
    assert not np.allclose(first.score(cal), other.score(cal))


def test_training_lowers_the_loss_and_keeps_torch_threads() -> None:
    rng = np.random.default_rng(5)
    cal, y = _hidden_direction(300, rng)
    threads = torch.get_num_threads()
    fn = Colander(K, ColanderConfig(epochs=60)).fit(cal, y, seed=0)
    assert torch.get_num_threads() == threads
    assert fn.train_loss.shape == (60,)
    assert fn.train_loss[-10:].mean() < fn.train_loss[:3].mean()
    assert fn.selected_epoch == 60


def test_snapshot_selection_on_a_held_out_part_of_d_cal() -> None:
    rng = np.random.default_rng(6)
    cal, y = _hidden_direction(200, rng)
    config = ColanderConfig(epochs=40)
    selected = Colander(K, config, selection_fraction=0.3, snapshot_every=10).fit(cal, y, seed=0)
    assert selected.selected_epoch in (10, 20, 30, 40)
    final = Colander(K, config).fit(cal, y, seed=0)
    assert not np.allclose(selected.score(cal), final.score(cal))  # trained on 140 points, not 200


def test_colander_validates_inputs() -> None:
    rng = np.random.default_rng(7)
    cal, y = _hidden_direction(40, rng)
    fn = Colander(K, ColanderConfig(epochs=2)).fit(cal, y)
    with pytest.raises(DataError, match=r"features of shape \(n, 8\) as in D_cal, got \(5, 6\)"):
        fn.score(Predictions(np.zeros((5, K), np.float32), np.zeros((5, 6), np.float32)))
    bad = Predictions(cal.logits.copy(), cal.features.copy())
    bad.features[0, 0] = np.nan
    with pytest.raises(DataError, match="must be finite"):
        Colander(K, ColanderConfig(epochs=2)).fit(bad, y)
    with pytest.raises(TBALInputError, match="at least 2 calibration points, got 1"):
        Colander(K).fit(cal.subset(np.array([0])), y[:1])
