"""What a round reports beside its auto-labels: each training label's AUM (label review) and the
evaluation of the classifier on the validation set. Neither may change what the round decides."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tbal.config import ModelConfig, TBALConfig, with_overrides
from tbal.errors import TBALInputError
from tbal.evaluation import evaluate_model
from tbal.loop import RoundInput, RoundOutput, run_round
from tbal.models import build_model
from tbal.training.aum import AUMRecorder, likely_mislabeled
from tbal.training.margins import margins
from tbal.training.train import one_hot
from tbal.uncertainty import MCDropoutClassifier

K = 3


def _blobs(n: int, seed: int = 0, spread: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(K, 4))
    y = rng.integers(0, K, size=n)
    return (centers[y] + rng.normal(scale=spread, size=(n, 4))).astype(np.float32), y.astype(np.int64)


def _config(**overrides: object) -> TBALConfig:
    base: dict[str, object] = {
        "model.name": "mlp",
        "model.hidden": "16",
        "train.epochs": 4,
        "train.device": "cpu",
        "thresholds.epsilon": 0.1,
    }
    return with_overrides(TBALConfig(), {**base, **overrides})


def _inputs(X: np.ndarray, y_train: np.ndarray, y: np.ndarray, **kw: object) -> RoundInput:
    n_t = y_train.size
    return RoundInput(
        X_train=X[:n_t],
        targets_train=one_hot(y_train, K),
        X_val=X[n_t : n_t + 120],
        y_val=y[n_t : n_t + 120],
        X_pool=X[n_t + 120 :],
        num_classes=K,
        n_queries=10,
        **kw,  # type: ignore[arg-type]
    )


def _same_round(a: RoundOutput, b: RoundOutput) -> None:
    state_a, state_b = a.model.state_dict(), b.model.state_dict()
    assert state_a.keys() == state_b.keys()
    for name in state_a:
        assert torch.equal(state_a[name], state_b[name]), name
    np.testing.assert_array_equal(a.thresholds.thresholds, b.thresholds.thresholds)
    np.testing.assert_array_equal(a.pool_scores, b.pool_scores)
    np.testing.assert_array_equal(a.auto_mask, b.auto_mask)
    np.testing.assert_array_equal(a.query_index, b.query_index)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"train.method": "mixup"},
        {"train.method": "crl"},
        {"train.method": "fmfp"},
        {"train.method": "saliency_mixup"},
        {"train.method": "autolabel"},
        {"train.targets": "sampled"},
        {"model.uncertainty": "mc-dropout", "model.dropout": 0.3, "model.mc_passes": 3},
        {"model.uncertainty": "sngp"},
        {"model.uncertainty": "duq", "confidence.name": "kernel"},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default",
)
def test_recording_aum_leaves_the_round_bit_identical(overrides: dict[str, object]) -> None:
    """The recorder is an eval-mode pass without gradients after each epoch (its own dropout masks for
    MC Dropout, no batch-norm update, no draw from the training's generators): the weights, scores,
    thresholds and queries are the same bit for bit with and without it."""
    torch.set_num_threads(1)
    X, y = _blobs(400)
    config = _config(**overrides)
    plain = run_round(_inputs(X, y[:80], y), config, seed=7)
    recorded = run_round(_inputs(X, y[:80], y, record_aum=True), config, seed=7)
    _same_round(plain, recorded)
    assert plain.train_aum is None and plain.train_predicted is None
    assert recorded.train_aum is not None and recorded.train_aum.shape == (80,)
    assert recorded.train_predicted is not None and recorded.train_predicted.shape == (80,)


def test_aum_of_an_mc_dropout_model_is_its_network_without_dropout() -> None:
    """The margins are the trained network's (eval mode, dropout off), not the T-pass MC average that
    the model predicts with: the quantity Pleiss et al. track, at 1/T of the cost."""
    config = ModelConfig(name="mlp", hidden=(16,), dropout=0.3, uncertainty="mc-dropout", mc_passes=5)
    model = build_model(config, (4,), K, seed=0)
    assert isinstance(model, MCDropoutClassifier)  # its backbone is the network that is trained
    x = torch.randn(30, 4, generator=torch.Generator().manual_seed(0))
    classes = torch.arange(30) % K
    recorder = AUMRecorder(x, classes)
    model.train()
    recorder(model, 0)
    assert model.training  # the hook leaves the mode as it found it
    model.eval()
    with torch.no_grad():
        network = margins(model.backbone(x)[0], classes).double().numpy()
        averaged = margins(model(x)[0], classes).double().numpy()
    np.testing.assert_array_equal(recorder.history[0], network)
    assert not np.allclose(recorder.history[0], averaged)


def test_a_planted_flipped_label_has_the_lowest_aum() -> None:
    """Two training labels flipped to another class: the round's AUM ranks them first for review, and
    the model predicts their true class (it learned the blobs, not the flips)."""
    torch.set_num_threads(1)
    X, y = _blobs(500, seed=3, spread=0.5)
    y_train = y[:100].copy()
    flipped = np.array([11, 42])
    y_train[flipped] = (y_train[flipped] + 1) % K
    out = run_round(
        _inputs(X, y_train, y, record_aum=True), _config(**{"train.epochs": 20, "train.lr": 0.05}), seed=1
    )
    assert out.train_aum is not None and out.train_predicted is not None
    review = likely_mislabeled(out.train_aum, fraction=0.05)  # 5 of 100
    assert set(flipped) <= set(review[:2].tolist())
    assert (out.train_aum[flipped] < 0).all()
    np.testing.assert_array_equal(out.train_predicted[flipped], y[flipped])


def test_evaluation_report_is_the_model_on_the_validation_set() -> None:
    """The round's report equals :func:`evaluate_model` on X_val, including the cross-entropy against the
    humans' distributions when they are given, and needs no pass of its own."""
    torch.set_num_threads(1)
    X, y = _blobs(400)
    rng = np.random.default_rng(0)
    human = rng.dirichlet(np.ones(K), size=120) * 0.3 + one_hot(y[80:200], K) * 0.7
    out = run_round(_inputs(X, y[:80], y, human_val=human), _config(), seed=2)
    expected = evaluate_model(out.model, X[80:200], y[80:200], human=human, fgsm_epsilon=None)
    assert out.evaluation is not None
    assert out.evaluation == expected
    assert out.evaluation.n == 120 and out.evaluation.human_cross_entropy is not None
    hard_only = run_round(_inputs(X, y[:80], y), _config(), seed=2).evaluation
    assert hard_only is not None and hard_only.human_cross_entropy is None
    assert hard_only.accuracy == expected.accuracy and hard_only.ece == expected.ece


def test_human_val_must_match_the_validation_set() -> None:
    X, y = _blobs(400)
    with pytest.raises(TBALInputError, match=r"human_val of shape \(120, 3\)"):
        run_round(_inputs(X, y[:80], y, human_val=np.ones((5, K)) / K), _config(), seed=0)
