"""Classifier shapes, shape checks, deterministic initialisation, devices."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tbal.config import ConfigError, ModelConfig, ModelName
from tbal.models import (
    CNN,
    MLP,
    Classifier,
    LeNet5,
    ResNet,
    SeededDropout,
    build_model,
    init_parameters,
    resolve_device,
)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize(
    ("name", "shape", "cls", "feature_dim"),
    [
        ("auto", (20,), MLP, 30),
        ("mlp", (7,), MLP, 30),
        ("auto", (1, 28, 28), LeNet5, 84),
        ("auto", (1, 32, 32), LeNet5, 84),
        ("auto", (1, 8, 8), LeNet5, 84),
        ("lenet5", (3, 32, 32), LeNet5, 84),
        ("auto", (3, 32, 32), CNN, 512),
        ("cnn", (1, 32, 32), CNN, 512),
        ("resnet", (3, 32, 32), ResNet, 64),
        ("resnet", (1, 8, 8), ResNet, 64),
    ],
)
def test_output_shapes(name: ModelName, shape: tuple[int, ...], cls: type, feature_dim: int) -> None:
    model = build_model(ModelConfig(name=name, hidden=(16, 30)), shape, 5, seed=0)
    assert isinstance(model, cls) and isinstance(model, Classifier)
    assert model.num_classes == 5 and model.feature_dim == feature_dim and model.input_shape == shape
    model.eval()
    with torch.no_grad():
        logits, features = model(torch.zeros(3, *shape))
    assert logits.shape == (3, 5) and features.shape == (3, feature_dim)
    assert torch.isfinite(logits).all() and torch.isfinite(features).all()


def test_mlp_hidden_widths_and_activation() -> None:
    model = build_model(ModelConfig(name="mlp", hidden=(1000, 500, 30), activation="relu"), (384,), 4)
    assert isinstance(model, MLP)
    widths = [(layer.in_features, layer.out_features) for layer in model.layers]  # type: ignore[union-attr]
    assert widths == [(384, 1000), (1000, 500), (500, 30)]
    assert isinstance(model.act, nn.ReLU) and model.head.in_features == 30
    with torch.no_grad():
        _, features = model(torch.randn(6, 384, generator=torch.Generator().manual_seed(0)))
    assert (features >= 0).all()  # ReLU features


def test_cnn_size_matches_the_paper() -> None:
    """PAPERS.md: the CIFAR-10 CNN has 5.8M parameters."""
    model = build_model(ModelConfig(name="cnn"), (3, 32, 32), 10)
    count = sum(p.numel() for p in model.parameters())
    assert 5.75e6 < count < 5.9e6


def test_lenet_on_small_images_equals_lenet_on_resized_images() -> None:
    small = build_model(ModelConfig(name="lenet5"), (1, 8, 8), 10, seed=3)
    large = build_model(ModelConfig(name="lenet5"), (1, 28, 28), 10, seed=3)
    assert _same(small, large)  # same architecture, same seed
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        z_small, _ = small.eval()(x)
        z_large, _ = large.eval()(F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False))
    torch.testing.assert_close(z_small, z_large)


@pytest.mark.parametrize(
    ("name", "shape", "message"),
    [
        ("cnn", (1, 8, 8), "'cnn' expects 32×32"),
        ("mlp", (1, 28, 28), "'mlp' expects feature vectors"),
        ("lenet5", (1, 40, 40), "'lenet5' expects square images"),
        ("lenet5", (1, 28, 20), "'lenet5' expects square images"),
        ("lenet5", (64,), r"expects images of shape \(C, H, W\)"),
        ("resnet", (3, 4, 4), "at least 8×8"),
        ("auto", (3, 4, 4, 4), r"\(d,\) or \(C, H, W\)"),
    ],
)
def test_models_that_do_not_fit_raise(name: ModelName, shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_model(ModelConfig(name=name), shape, 3)


def test_bad_sizes_raise() -> None:
    with pytest.raises(ConfigError, match="num_classes must be an integer ≥ 2"):
        build_model(ModelConfig(), (5,), 1)
    with pytest.raises(ConfigError, match="positive sizes"):
        build_model(ModelConfig(), (0,), 3)


@pytest.mark.parametrize("name", ["mlp", "lenet5", "cnn", "resnet"])
def test_same_seed_same_weights_and_no_global_rng(name: ModelName) -> None:
    shape = (12,) if name == "mlp" else (3, 32, 32)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = build_model(ModelConfig(name=name), shape, 4, seed=7)
    assert torch.equal(before, torch.random.get_rng_state())  # the global RNG was not drawn from
    torch.manual_seed(999)  # a different global state must not matter
    b = build_model(ModelConfig(name=name), shape, 4, seed=7)
    c = build_model(ModelConfig(name=name), shape, 4, seed=8)
    assert _same(a, b)
    assert not _same(a, c)


def test_default_initialisation_scales() -> None:
    """Weights U(±g·√(3/fan_in)) (variance g²/fan_in), zero biases: g = 5/3 for tanh hidden layers,
    √2 for ReLU hidden layers, 1 for the output layer."""
    mlp = build_model(ModelConfig(name="mlp", hidden=(256,)), (400,), 3, seed=0)
    assert isinstance(mlp, MLP)
    first = mlp.layers[0]
    assert isinstance(first, nn.Linear)
    bound = 5 / 3 * math.sqrt(3 / 400)
    assert first.weight.abs().max() <= bound and first.weight.abs().max() > 0.99 * bound
    assert first.weight.std().item() == pytest.approx(5 / 3 / math.sqrt(400), rel=0.02)
    assert first.bias.abs().max() == 0
    assert mlp.head.weight.abs().max() <= math.sqrt(3 / 256)
    assert mlp.head.weight.std().item() == pytest.approx(1 / math.sqrt(256), rel=0.1)
    cnn = build_model(ModelConfig(name="cnn"), (3, 32, 32), 10, seed=0)
    assert isinstance(cnn, CNN)
    assert cnn.fc1.weight.std().item() == pytest.approx(math.sqrt(2 / 4096), rel=0.01)
    assert cnn.fc1.bias.abs().max() == 0
    assert cnn.head.weight.abs().max() <= math.sqrt(3 / 512)


def test_batch_norm_buffers_are_initialised() -> None:
    model = build_model(ModelConfig(name="resnet"), (3, 32, 32), 10, seed=0)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns
    for bn in bns:
        mean, var, count = bn.running_mean, bn.running_var, bn.num_batches_tracked
        assert mean is not None and var is not None and count is not None
        assert torch.equal(mean, torch.zeros_like(mean)) and torch.equal(var, torch.ones_like(var))
        assert torch.equal(bn.weight, torch.ones_like(bn.weight)) and int(count) == 0


def test_init_parameters_refuses_unknown_modules() -> None:
    with pytest.raises(TypeError, match="LayerNorm"):
        init_parameters(nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2)), seed=0)


def test_seeded_dropout() -> None:
    x = torch.ones(1000, 50)
    drop = SeededDropout(0.3)
    drop.generator = torch.Generator().manual_seed(0)
    a = drop(x)
    drop.generator = torch.Generator().manual_seed(0)
    b = drop(x)
    assert torch.equal(a, b)
    assert (a == 0).float().mean().item() == pytest.approx(0.3, abs=0.01)
    assert a.mean().item() == pytest.approx(1.0, abs=0.02)  # inverted dropout keeps the mean
    assert torch.equal(drop.eval()(x), x)
    with pytest.raises(ConfigError):
        SeededDropout(1.0)


def test_set_dropout_generator_reaches_every_dropout() -> None:
    model = build_model(ModelConfig(name="mlp", hidden=(8, 8), dropout=0.5), (4,), 2)
    gen = torch.Generator()
    model.set_dropout_generator(gen)
    drops = [m for m in model.modules() if isinstance(m, SeededDropout)]
    assert drops and all(d.generator is gen for d in drops)


def test_resolve_device(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ConfigError, match="only 2 CUDA device"):
        resolve_device("cuda:2")
    for bad in ("gpu", "cuda:x", "", "CPU"):
        with pytest.raises(ConfigError, match="device must be"):
            resolve_device(bad)
