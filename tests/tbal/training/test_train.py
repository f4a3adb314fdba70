"""Training with hard / soft / sampled targets, the train-time methods, determinism, prediction."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tbal.config import TRAIN_METHODS, ConfigError, ModelConfig, TrainConfig, preset
from tbal.data import load_dataset
from tbal.errors import TBALInputError
from tbal.models import Classifier, build_model
from tbal.predictions import Predictions, predict
from tbal.training.objectives import (
    OBJECTIVES,
    TargetBatch,
    TrainContext,
    make_objective,
    soft_cross_entropy,
    squentropy_penalty,
)
from tbal.training.run import cosine_lr
from tbal.training.train import one_hot, train_classifier

DATA_DIR = Path(os.environ.get("TBAL_DATA_DIR", Path(__file__).resolve().parents[4] / "shared" / "data"))
CPU = torch.device("cpu")


def _blobs(n: int, k: int = 3, d: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k well separated Gaussian blobs in d dimensions."""
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(100).normal(scale=3.0, size=(k, d))
    y = rng.integers(0, k, size=n)
    X = centers[y] + rng.normal(size=(n, d))
    return X.astype(np.float32), y


def _mlp(d: int, k: int, hidden: tuple[int, ...] = (32,), dropout: float = 0.0) -> Classifier:
    return build_model(ModelConfig(name="mlp", hidden=hidden, dropout=dropout), (d,), k)


def _config(**changes: object) -> TrainConfig:
    base: dict[str, object] = {"epochs": 20, "lr": 0.05, "weight_decay": 0.0, "device": "cpu"}
    base.update(changes)
    return TrainConfig(**base)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- losses


def test_soft_cross_entropy_known_values() -> None:
    logits = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    probs = torch.tensor([[0.2, 0.8, 0.0], [0.5, 0.25, 0.25]])
    log_p = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    expected = -(probs * log_p).sum(dim=1).mean()
    batch = TargetBatch(classes=torch.tensor([1, 0]), probs=probs, index=torch.arange(2))
    torch.testing.assert_close(soft_cross_entropy(logits, batch), expected)
    hard = TargetBatch(classes=torch.tensor([1, 0]), probs=None, index=torch.arange(2))
    torch.testing.assert_close(soft_cross_entropy(logits, hard), (-log_p[0, 1] - log_p[1, 0]) / 2)


def test_squentropy_penalty_known_values() -> None:
    logits = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]])
    # row 0 target 2: off-class 1, 2; row 1 target 0: off-class 0.5, 2; mean over the 6 entries
    expected = (1.0 + 4.0 + 0.25 + 4.0) / 6
    assert squentropy_penalty(logits, torch.tensor([2, 0])).item() == pytest.approx(expected)


def test_objective_registry() -> None:
    assert set(OBJECTIVES) >= {"vanilla", "squentropy"}
    assert set(OBJECTIVES) == set(TRAIN_METHODS)  # every method the config accepts can be built
    context = TrainContext(
        TrainConfig(), torch.zeros(4, 2), torch.full((4, 2), 0.5), np.random.default_rng(0)
    )
    with pytest.raises(ConfigError, match=r"must be one of vanilla, squentropy.*'mixupp'"):
        make_objective("mixupp", context)


def test_cosine_schedule() -> None:
    assert cosine_lr(0.1, 0, 100) == pytest.approx(0.1)
    assert cosine_lr(0.1, 50, 100) == pytest.approx(0.05)
    assert cosine_lr(0.1, 100, 100) == pytest.approx(0.0)
    assert cosine_lr(0.1, 25, 100) == pytest.approx(0.05 * (1 + math.cos(math.pi / 4)))


# ---------------------------------------------------------------------------------------------- training


def test_the_vectors_preset_trains_the_same_whatever_unit_the_vectors_come_in() -> None:
    # feature vectors' default (preset vectors) standardises the inputs: the same blobs in units 1000
    # times larger train the same classifier; without it the MLP's training sees other numbers
    X, y = _blobs(400)
    vectors = dataclasses.replace(preset("vectors").train, epochs=10, device="cpu")
    plain = dataclasses.replace(vectors, standardize_inputs=False)

    def logits(config: TrainConfig, scale: float) -> np.ndarray:
        model = train_classifier(
            _mlp(10, 3), X[:200] * scale, one_hot(y[:200], 3), config, seed=3, device=CPU
        )
        return predict(model, X[200:] * scale).logits

    np.testing.assert_allclose(logits(vectors, 1.0), logits(vectors, 1000.0), rtol=1e-3, atol=1e-3)
    assert np.abs(logits(plain, 1.0) - logits(plain, 1000.0)).max() > 1.0


def test_mlp_learns_gaussian_blobs() -> None:
    X, y = _blobs(600)
    model = train_classifier(_mlp(10, 3), X[:300], one_hot(y[:300], 3), _config(), seed=0, device=CPU)
    accuracy = (predict(model, X[300:]).predicted == y[300:]).mean()
    assert accuracy >= 0.97
    assert not model.training  # returned in eval mode


def test_lenet_learns_sklearn_digits() -> None:
    path = DATA_DIR / "sklearn_digits.npz"
    if not path.exists():
        pytest.skip(f"shared data file {path} is not present")
    ds = load_dataset(path)
    order = np.random.default_rng(0).permutation(len(ds))
    train, test = order[:600], order[600:1100]
    model = build_model(ModelConfig(), ds.input_shape, ds.num_classes)  # auto: LeNet-5 on 8×8 images
    config = _config(epochs=8, batch_size=64, lr=0.1, weight_decay=1e-4)
    train_classifier(model, ds.X[train], one_hot(ds.y[train], 10), config, seed=0, device=CPU)
    accuracy = (predict(model, ds.X[test]).predicted == ds.y[test]).mean()
    assert accuracy >= 0.85


def test_same_seed_identical_different_seed_different() -> None:
    X, y = _blobs(120)
    T = one_hot(y, 3)
    config = _config(epochs=3, targets="sampled")
    runs = []
    for seed in (5, 5, 6):
        model = _mlp(10, 3, hidden=(16, 16), dropout=0.2)
        train_classifier(model, X, T * 0.8 + 0.2 / 3, config, seed=seed, device=CPU)
        runs.append(predict(model, X).logits)
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_training_does_not_use_the_global_rng() -> None:
    X, y = _blobs(64)
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    model = _mlp(10, 3, dropout=0.3)
    train_classifier(model, X, one_hot(y, 3), _config(epochs=2, targets="sampled"), seed=1, device=CPU)
    assert torch.equal(before, torch.random.get_rng_state())
    torch.manual_seed(12345)
    other = _mlp(10, 3, dropout=0.3)
    train_classifier(other, X, one_hot(y, 3), _config(epochs=2, targets="sampled"), seed=1, device=CPU)
    np.testing.assert_array_equal(predict(model, X).logits, predict(other, X).logits)


def test_reinitialize_false_continues_from_current_weights() -> None:
    X, y = _blobs(60)
    model = _mlp(10, 3)
    train_classifier(model, X, one_hot(y, 3), _config(epochs=2), seed=0, device=CPU)
    after_first = predict(model, X).logits
    fresh = _mlp(10, 3)
    train_classifier(fresh, X, one_hot(y, 3), _config(epochs=2), seed=0, device=CPU)
    np.testing.assert_array_equal(after_first, predict(fresh, X).logits)  # re-initialised from the seed
    train_classifier(fresh, X, one_hot(y, 3), _config(epochs=2), seed=0, device=CPU, reinitialize=False)
    assert not np.array_equal(after_first, predict(fresh, X).logits)


def _constant_target_probs(mode: str) -> np.ndarray:
    """Every point has the target distribution (0.7, 0.3); returns the trained p(class 0) per point."""
    X = np.random.default_rng(0).normal(size=(200, 5)).astype(np.float32)
    T = np.tile(np.array([[0.7, 0.3]], dtype=np.float32), (200, 1))
    model = _mlp(5, 2)
    train_classifier(model, X, T, _config(targets=mode), seed=0, device=CPU)
    return predict(model, X).probs[:, 0]


def test_soft_targets_are_matched() -> None:
    p = _constant_target_probs("soft")
    assert p.mean() == pytest.approx(0.7, abs=0.02)
    assert np.abs(p - 0.7).max() < 0.1


def test_hard_targets_use_the_argmax() -> None:
    p = _constant_target_probs("hard")
    assert p.min() > 0.95


def test_sampled_targets_differ_from_hard() -> None:
    p = _constant_target_probs("sampled")
    # labels drawn anew each epoch (70% class 0): probabilities stay near 0.7, far from the hard run's ≈ 1
    assert 0.6 < p.mean() < 0.8
    assert p.max() < 0.95


def test_squentropy_shrinks_off_class_logits() -> None:
    X, y = _blobs(400)
    off: dict[str, float] = {}
    for method in ("vanilla", "squentropy"):
        model = _mlp(10, 3)
        train_classifier(model, X[:200], one_hot(y[:200], 3), _config(method=method), seed=0, device=CPU)
        preds = predict(model, X[200:])
        assert (preds.predicted == y[200:]).mean() >= 0.95
        logits = preds.logits.copy()
        logits[np.arange(200), y[200:]] = 0.0
        off[method] = float((logits**2).mean())
    assert off["squentropy"] < 0.1 * off["vanilla"]


def test_progress_after_each_epoch() -> None:
    X, y = _blobs(40)
    seen: list[float] = []
    train_classifier(
        _mlp(10, 3), X, one_hot(y, 3), _config(epochs=4), seed=0, device=CPU, progress=seen.append
    )
    assert seen == [0.25, 0.5, 0.75, 1.0]


def test_divergence_raises() -> None:
    X, y = _blobs(64)
    X = X * 1e6
    model = build_model(ModelConfig(name="mlp", hidden=(16,), activation="relu"), (10,), 3)
    with pytest.raises(FloatingPointError, match=r"training diverged.*lower train\.lr"):
        train_classifier(model, X, one_hot(y, 3), _config(epochs=3, lr=1e6), seed=0, device=CPU)


def test_training_input_checks() -> None:
    X, y = _blobs(10)
    model = _mlp(10, 3)
    T = one_hot(y, 3)
    with pytest.raises(TBALInputError, match=r"expected targets of shape \(10, 3\).*\(10, 4\)"):
        train_classifier(model, X, one_hot(y, 4), _config(), seed=0)
    with pytest.raises(TBALInputError, match=r"expected X of shape \(n, 10\), got \(10, 9\)"):
        train_classifier(model, X[:, :9], T, _config(), seed=0)
    with pytest.raises(TBALInputError, match=r"row 0 summing to 0\.5"):
        train_classifier(model, X, T * 0.5, _config(), seed=0)
    with pytest.raises(TBALInputError, match="at least one labeled point"):
        train_classifier(model, X[:0], T[:0], _config(), seed=0)
    bad = X.copy()
    bad[3, 3] = np.nan
    with pytest.raises(TBALInputError, match="finite inputs"):
        train_classifier(model, bad, T, _config(), seed=0)


# ---------------------------------------------------------------------------------------------- predict


def test_predict_batches_and_modes() -> None:
    X, _ = _blobs(50)
    model = _mlp(10, 3, hidden=(8, 6))
    model.train()
    whole = predict(model, X)
    pieces = predict(model, X, batch_size=7)
    np.testing.assert_allclose(whole.logits, pieces.logits, rtol=1e-6, atol=1e-6)
    assert whole.logits.dtype == np.float32 and whole.features.shape == (50, 6)
    assert model.training  # mode restored
    with torch.no_grad():
        z, _ = model.eval()(torch.from_numpy(X))
    np.testing.assert_allclose(whole.logits, z.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(whole.probs, F.softmax(z, dim=1).numpy(), rtol=1e-5, atol=1e-6)
    empty = predict(model, X[:0])
    assert isinstance(empty, Predictions) and empty.logits.shape == (0, 3) and empty.features.shape == (0, 6)
    with pytest.raises(TBALInputError, match=r"expected X of shape \(n, 10\)"):
        predict(model, X[:, :4])


def test_read_only_inputs_are_accepted() -> None:
    X, y = _blobs(30)
    frozen = np.frombuffer(X.tobytes(), dtype=np.float32).reshape(X.shape)  # read-only, as from stored bytes
    assert not frozen.flags.writeable
    model = _mlp(10, 3)
    train_classifier(model, frozen, one_hot(y, 3), _config(epochs=1), seed=0, device=CPU)
    np.testing.assert_array_equal(predict(model, frozen).logits, predict(model, X).logits)
