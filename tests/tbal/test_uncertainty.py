"""Mechanisms of the uncertainty-aware models on small synthetic problems: MC Dropout averages T noisy
passes, SNGP's layers keep their spectral norm under the bound and its Laplace covariance is the
brute-force one, DUQ's certainty falls away from the data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tbal.confidence.kernel import KernelConfidence, kernel_score
from tbal.config import ConfigError, ModelConfig, TrainConfig
from tbal.errors import TBALInputError
from tbal.models import Classifier, ResNet, build_model
from tbal.predictions import predict
from tbal.training.train import one_hot
from tbal.uncertainty import (
    MEAN_FIELD_FACTOR,
    DUQClassifier,
    MCDropoutClassifier,
    RBFCentroids,
    SNGPClassifier,
    SpectralNorm,
    mc_dropout_passes,
    train_uncertainty_model,
)

TRAIN = TrainConfig(epochs=25, batch_size=32, lr=0.05, device="cpu")


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian blobs in the plane (sd 0.3) around (0, 1), (1, −1), (−1, −1)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = np.array([[0.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    return (centres[y] + rng.normal(0.0, 0.3, (n, 2))).astype(np.float32), y.astype(np.int64)


def _config(**kw: object) -> ModelConfig:
    return ModelConfig(name="mlp", hidden=(32, 32), activation="relu", **kw)  # type: ignore[arg-type]


def _train(config: ModelConfig, X: np.ndarray, y: np.ndarray, train: TrainConfig = TRAIN) -> Classifier:
    model = build_model(config, (2,), 3, seed=0)
    return train_uncertainty_model(model, X, one_hot(y, 3), train, config, seed=0)


def test_default_config_builds_the_plain_network() -> None:
    plain = build_model(ModelConfig(name="resnet"), (3, 32, 32), 10, seed=1)
    assert type(plain) is ResNet
    assert len(plain.stages) == 9  # ResNet-20: 3 blocks a stage
    one_block = build_model(ModelConfig(name="resnet", resnet_blocks=1), (3, 32, 32), 10)
    assert isinstance(one_block, ResNet) and len(one_block.stages) == 3
    with pytest.raises(ConfigError, match=r"needs model\.dropout > 0"):
        ModelConfig(uncertainty="mc-dropout")


def test_mc_dropout_averages_t_noisy_passes() -> None:
    X, y = _blobs(300, seed=0)
    config = _config(uncertainty="mc-dropout", dropout=0.3, mc_passes=20)
    model = _train(config, X, y)
    assert isinstance(model, MCDropoutClassifier)
    xb = torch.from_numpy(X[:50])
    with torch.no_grad():
        log_probs, _ = mc_dropout_passes(model.backbone, model.standardize(xb), 20, seed=0)
        out, _ = model(xb)
        again, _ = model(xb)
    probs = log_probs.exp()  # (T, n, K)
    assert float(probs.var(dim=0).mean()) > 1e-4  # the passes differ: dropout is on
    torch.testing.assert_close(out.exp(), probs.mean(dim=0), rtol=1e-5, atol=1e-6)  # p̄ = mean of passes
    torch.testing.assert_close(out, again)  # seeded masks: reproducible
    assert not model.training and not any(m.training for m in model.modules())  # dropout switched back off
    with torch.no_grad():
        deterministic = model.backbone(model.standardize(xb))[0].softmax(dim=1)
    assert float((deterministic - out.exp()).abs().max()) > 1e-3  # averaging is not the dropout-free pass
    assert np.mean(predict(model, X).predicted == y) > 0.9


def test_sngp_spectral_norm_stays_under_the_bound_and_covariance_is_laplace() -> None:
    X, y = _blobs(300, seed=1)
    bound = 0.7
    config = _config(uncertainty="sngp", sngp_norm_bound=bound, sngp_features=256, sngp_ridge=1.0)
    model = _train(config, X, y)
    assert isinstance(model, SNGPClassifier)
    layers = [m for m in model.modules() if isinstance(m, SpectralNorm)]
    assert len(layers) == 2  # both hidden layers; the GP output layer is not normalised
    raw_norms = []
    for layer in layers:
        w = layer.normalized_weight().detach().reshape(layer.layer.weight.shape[0], -1)
        assert float(torch.linalg.matrix_norm(w, ord=2)) <= bound * 1.01
        raw_norms.append(float(torch.linalg.matrix_norm(layer.layer.weight.detach(), ord=2)))
    assert max(raw_norms) > bound * 1.2  # the bound was active, not trivially met
    # the covariance is the Laplace one, computed here by brute force in float64
    with torch.no_grad():
        phi, _ = model.random_features(torch.from_numpy(X))
        p = model.head(phi).softmax(dim=1).max(dim=1).values
    Phi, w = phi.double().numpy(), (p * (1 - p)).double().numpy()
    precision = np.eye(Phi.shape[1]) + Phi.T @ (w[:, None] * Phi)
    np.testing.assert_allclose(model.gp.covariance.double().numpy(), np.linalg.inv(precision), atol=1e-5)
    # eval logits are the mean-field ones: z / √(1 + π/8 · φᵀΣφ)
    with torch.no_grad():
        z = model.head(phi[:5])
        var = ((phi[:5] @ model.gp.covariance) * phi[:5]).sum(dim=1, keepdim=True)
        out, _ = model(torch.from_numpy(X[:5]))
    torch.testing.assert_close(out, z / torch.sqrt(1 + MEAN_FIELD_FACTOR * var))
    assert np.mean(predict(model, X).predicted == y) > 0.9


def test_sngp_variance_grows_away_from_the_data() -> None:
    X, y = _blobs(300, seed=2)
    model = _train(_config(uncertainty="sngp", sngp_features=256), X, y)
    assert isinstance(model, SNGPClassifier)
    rng = np.random.default_rng(3)
    angle = rng.uniform(0, 2 * math.pi, 200)
    far = (6.0 * np.c_[np.cos(angle), np.sin(angle)]).astype(np.float32)  # a ring far from the blobs
    with torch.no_grad():

        def variance(points: np.ndarray) -> float:
            phi, _ = model.random_features(torch.from_numpy(points))
            return float(((phi @ model.gp.covariance) * phi).sum(dim=1).mean())

        assert variance(far) > 2.0 * variance(X)


def test_duq_is_less_certain_far_from_the_data() -> None:
    X, y = _blobs(300, seed=4)
    config = _config(uncertainty="duq", duq_embedding=16, duq_length_scale=0.3, duq_gradient_penalty=0.5)
    model = _train(config, X, y, TrainConfig(epochs=30, batch_size=32, lr=0.05, device="cpu"))
    assert isinstance(model, DUQClassifier)
    preds = predict(model, X)
    assert (preds.logits <= 0).all()  # log-kernels
    assert np.mean(preds.predicted == y) > 0.9
    rng = np.random.default_rng(5)
    angle = rng.uniform(0, 2 * math.pi, 200)
    far = (6.0 * np.c_[np.cos(angle), np.sin(angle)]).astype(np.float32)
    near_score = kernel_score(preds.logits)
    far_score = kernel_score(predict(model, far).logits)
    assert np.median(far_score) < 0.5 * np.median(near_score)
    confidence = KernelConfidence(3).fit(preds, y)
    np.testing.assert_allclose(confidence.score(preds), near_score)


def test_rbf_centroids_move_by_the_moving_average() -> None:
    layer = RBFCentroids(in_dim=2, num_classes=2, embedding=3, length_scale=0.5, gamma=0.9)
    layer.init_from_generator(torch.Generator().manual_seed(0))
    sums, counts = layer.sums.clone(), layer.counts.clone()
    emb = torch.ones(4, 3, 2)  # (n, m, K)
    targets = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    layer.update(emb, targets)
    torch.testing.assert_close(layer.counts, 0.9 * counts + 0.1 * torch.tensor([2.5, 1.5]))
    torch.testing.assert_close(layer.sums, 0.9 * sums + 0.1 * torch.tensor([2.5, 1.5]).expand(3, 2))
    # a point on a centroid has kernel 1; log K is −mean_m (e − c)² / (2σ²)
    centroids = layer.sums / layer.counts
    log_k = layer.log_kernel(centroids[None].clone())
    assert float(log_k.max()) == pytest.approx(0.0, abs=1e-6)


def test_kernel_confidence_rejects_raw_logits() -> None:
    with pytest.raises(TBALInputError, match="log-scores"):
        kernel_score(np.array([[2.0, -1.0]]))
