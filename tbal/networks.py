"""Classifiers returning logits and penultimate features (the networks; :func:`tbal.models.build_model`
builds them, wrapped for uncertainty when the configuration asks).

Every classifier maps a batch of prepared inputs (see :mod:`tbal.data`) to ``(logits (n, K), features
(n, d))``; the features are the penultimate layer's activations, which confidence functions such as
Colander read (Vishwakarma et al., "Pearls from Pebbles", NeurIPS 2024).

The architectures are the reference experiments' (``../shared/PAPERS.md``): an MLP for feature vectors,
LeNet-5 for small grey images, a VGG-style CNN for CIFAR-10, and a ResNet-20-style network.

Parameters never come from torch's global random state: :func:`tbal.models.build_model` constructs the
modules on the ``meta`` device and fills every parameter from a local :class:`torch.Generator`
(:func:`init_parameters`), so the same seed gives bit-identical weights, whatever else the process has
drawn. Dropout masks come from a generator too (:meth:`Classifier.set_dropout_generator`, which
:func:`tbal.training.train.train_classifier` calls).
"""

from __future__ import annotations

import itertools
import math
import re
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from tbal.config import MODEL_NAMES, ConfigError, ModelConfig

__all__ = [
    "CNN",
    "MLP",
    "Classifier",
    "LeNet5",
    "MiniLMClassifier",
    "ResNet",
    "SeededDropout",
    "auto_name",
    "construct",
    "init_parameters",
    "resolve_device",
]


class SeededDropout(nn.Module):
    """Inverted dropout whose masks come from a :class:`torch.Generator` (not the global RNG).

    In training mode, ``x · m / (1 − p)`` with ``m ~ Bernoulli(1 − p)`` elementwise; identity in eval mode.
    Without a generator (a model trained outside :func:`tbal.training.train.train_classifier`) it falls
    back to :func:`torch.nn.functional.dropout`, which draws from the global RNG.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {p!r}")
        self.p = p
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.generator is None:
            return F.dropout(x, self.p, training=True)
        keep = torch.rand(x.shape, generator=self.generator, device=x.device, dtype=x.dtype) >= self.p
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Classifier(nn.Module):
    """Base of every classifier: ``forward(x) -> (logits (n, K), features (n, d))``.

    ``input_shape`` is one input's shape (``(d,)`` or ``(C, H, W)``), ``num_classes`` K, ``feature_dim`` d
    (the penultimate width). ``relu`` says which initialisation :func:`init_parameters` uses.
    """

    num_classes: int
    feature_dim: int
    input_shape: tuple[int, ...]
    network: str  # the ModelConfig.name that builds it (its training defaults: tbal.config.network_training)
    relu: bool = False
    input_mean: torch.Tensor  # () buffer: subtracted from every input value (0 unless standardised)
    input_std: torch.Tensor  # () buffer: divides every input value (1 unless standardised)

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("input_mean", torch.zeros(()))
        self.register_buffer("input_std", torch.ones(()))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def deterministic_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (n, K) of the network's own pass without dropout, for per-epoch measurements such as
        AUM (call in eval mode): the forward pass, except where an eval forward averages random passes
        (MC Dropout overrides it)."""
        return self(x)[0]

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        """(x − input_mean) / input_std, the first step of every forward pass; the buffers are 0 and 1
        (the identity) unless :func:`tbal.training.train.train_classifier` set them from the training inputs
        (``TrainConfig.standardize_inputs``). Being buffers, they travel in the state dict."""
        return (x - self.input_mean) / self.input_std

    def set_dropout_generator(self, generator: torch.Generator | None) -> None:
        """Draw every dropout mask of this model from ``generator`` (None: the global RNG)."""
        for module in self.modules():
            if isinstance(module, SeededDropout):
                module.generator = generator


def _activation(name: str) -> nn.Module:
    if name == "tanh":
        return nn.Tanh()
    if name == "relu":
        return nn.ReLU()
    raise ConfigError(f"model.activation must be one of tanh, relu; got {name!r}")


class MLP(Classifier):
    """Fully connected network for feature vectors (d,): ``d → h₁ → … → h_L → K``.

    Each hidden layer is ``act(W·x + b)`` (tanh or ReLU) followed by dropout; features = the last hidden
    layer's activations (n, h_L), before dropout. The text presets use 1000-500-30 tanh (PAPERS.md).
    """

    network = "mlp"

    def __init__(
        self, input_dim: int, num_classes: int, hidden: tuple[int, ...], activation: str, dropout: float
    ) -> None:
        super().__init__()
        widths = (input_dim, *hidden)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.act = _activation(activation)
        self.dropout = SeededDropout(dropout)
        self.head = nn.Linear(widths[-1], num_classes)
        self.input_shape = (input_dim,)
        self.num_classes = num_classes
        self.feature_dim = widths[-1]
        self.relu = activation == "relu"

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.standardize(x)  # (n, d)
        for i, layer in enumerate(self.layers):
            h = self.act(layer(self.dropout(h) if i > 0 else h))  # (n, h_i)
        return self.head(self.dropout(h)), h  # (n, K), features (n, h_L) before dropout


class LeNet5(Classifier):
    """LeNet-5 (LeCun et al. 1998) as in the reference MNIST runs: conv 6 (5×5) tanh, 2×2 average pool,
    conv 16 (5×5) tanh, average pool, conv 120 (5×5 over the 5×5 map, i.e. a fully connected layer) tanh,
    FC 84 tanh (the features, d = 84), FC K.

    Inputs (C, H, W) with H = W: 28 (the first conv pads by 2) or 32 (no padding); smaller square images
    (8 ≤ H < 28, e.g. scikit-learn's 8×8 digits) are resized to 28×28 by bilinear interpolation inside
    ``forward``, so the architecture stays the reference one.
    """

    network = "lenet5"

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, dropout: float) -> None:
        super().__init__()
        channels, height, _ = input_shape
        self.resize_to: int | None = 28 if height < 28 else None
        pad = 0 if height == 32 else 2
        self.features_net = nn.Sequential(
            nn.Conv2d(channels, 6, kernel_size=5, padding=pad),  # (n, 6, 28, 28)
            nn.Tanh(),
            nn.AvgPool2d(2),  # (n, 6, 14, 14)
            nn.Conv2d(6, 16, kernel_size=5),  # (n, 16, 10, 10)
            nn.Tanh(),
            nn.AvgPool2d(2),  # (n, 16, 5, 5)
            nn.Conv2d(16, 120, kernel_size=5),  # (n, 120, 1, 1)
            nn.Tanh(),
            nn.Flatten(),  # (n, 120)
        )
        self.dropout = SeededDropout(dropout)
        self.fc = nn.Linear(120, 84)
        self.head = nn.Linear(84, num_classes)
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.feature_dim = 84

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.standardize(x)
        if self.resize_to is not None:
            x = F.interpolate(x, size=(self.resize_to, self.resize_to), mode="bilinear", align_corners=False)
        h = self.features_net(x)  # (n, 120)
        features = torch.tanh(self.fc(self.dropout(h)))  # (n, 84)
        return self.head(self.dropout(features)), features


class CNN(Classifier):
    """The reference CIFAR-10 CNN (about 5.8M parameters for K = 10): 3×3 convs (padding 1) with ReLU,
    32-64-pool-128-128-pool-256-256-pool (2×2 max pools), then FC 4096 → 1024 → 512 → K with ReLU;
    features = the 512-wide layer. Inputs (C, 32, 32)."""

    network = "cnn"

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, dropout: float) -> None:
        super().__init__()
        channels = input_shape[0]

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.ReLU()]

        self.conv = nn.Sequential(
            *block(channels, 32),
            *block(32, 64),
            nn.MaxPool2d(2),  # (n, 64, 16, 16)
            *block(64, 128),
            *block(128, 128),
            nn.MaxPool2d(2),  # (n, 128, 8, 8)
            *block(128, 256),
            *block(256, 256),
            nn.MaxPool2d(2),  # (n, 256, 4, 4)
            nn.Flatten(),  # (n, 4096)
        )
        self.dropout = SeededDropout(dropout)
        self.fc1 = nn.Linear(4096, 1024)
        self.fc2 = nn.Linear(1024, 512)
        self.head = nn.Linear(512, num_classes)
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.feature_dim = 512
        self.relu = True

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.conv(self.standardize(x))  # (n, 4096)
        h = F.relu(self.fc1(self.dropout(h)))  # (n, 1024)
        features = F.relu(self.fc2(self.dropout(h)))  # (n, 512)
        return self.head(self.dropout(features)), features


class _BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers with an identity shortcut (a 1×1 conv-BN projection when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(Classifier):
    """ResNet-20-style network (He et al. 2016, CIFAR variant): conv 16 3×3-BN-ReLU, three stages of
    ``blocks`` basic blocks with 16, 32, 64 channels (stride 2 at the start of stages 2 and 3; projection
    shortcuts), global average pooling (the features, d = 64), FC K. Inputs (C, H, W) with H, W ≥ 8;
    the reference size is 32×32."""

    network = "resnet"

    def __init__(
        self, input_shape: tuple[int, int, int], num_classes: int, dropout: float, blocks: int = 3
    ) -> None:
        super().__init__()
        channels = input_shape[0]
        self.stem = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU()
        )
        stages: list[nn.Module] = []
        c_in = 16
        for c_out, stride in ((16, 1), (32, 2), (64, 2)):
            for b in range(blocks):
                stages.append(_BasicBlock(c_in, c_out, stride if b == 0 else 1))
                c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.dropout = SeededDropout(dropout)
        self.head = nn.Linear(64, num_classes)
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.feature_dim = 64
        self.relu = True

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.stages(self.stem(self.standardize(x)))  # (n, 64, H/4, W/4)
        features = h.mean(dim=(2, 3))  # (n, 64)
        return self.head(self.dropout(features)), features


class MiniLMClassifier(Classifier):
    """MiniLM fine-tuned end to end (:mod:`tbal.minilm`): word-piece ids (L,) -> the pretrained encoder's
    mean-pooled 384 values (the features) -> dropout -> a linear head. Its inputs are never standardised:
    they are ids."""

    network = "minilm"

    def __init__(self, length: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        from tbal.minilm import HIDDEN, MiniLMEncoder

        self.encoder = MiniLMEncoder()
        self.dropout = SeededDropout(dropout)
        self.head = nn.Linear(HIDDEN, num_classes)
        self.input_shape = (length,)
        self.num_classes = num_classes
        self.feature_dim = HIDDEN

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from tbal.minilm import SCORE_CHUNK, check_token_ids, score_in_chunks

        ids = check_token_ids(x)  # (n, L)
        if self.training or ids.shape[0] <= SCORE_CHUNK:
            features = self.encoder(ids)
        else:
            features = score_in_chunks(self.encoder, ids)  # (n, 384)
        return self.head(self.dropout(features)), features


def auto_name(shape: tuple[int, ...]) -> str:
    if len(shape) == 1:
        return "mlp"
    if len(shape) == 3:
        return "cnn" if shape == (3, 32, 32) else "lenet5"
    raise ConfigError(f"model 'auto' expects inputs of shape (d,) or (C, H, W), got {shape}")


def construct(name: str, config: ModelConfig, shape: tuple[int, ...], num_classes: int) -> Classifier:
    if name == "mlp":
        if len(shape) != 1:
            raise ConfigError(
                f"model 'mlp' expects feature vectors of shape (d,), got inputs of shape {shape}; "
                "use lenet5, cnn or resnet for images"
            )
        return MLP(shape[0], num_classes, config.hidden, config.activation, config.dropout)
    if name in ("lenet5", "cnn", "resnet") and len(shape) != 3:
        raise ConfigError(f"model {name!r} expects images of shape (C, H, W), got inputs of shape {shape}")
    if name == "lenet5":
        c, h, w = shape
        if h != w or not (8 <= h <= 28 or h == 32):
            raise ConfigError(
                "model 'lenet5' expects square images of 28×28 or 32×32 "
                f"(or 8×8 to 27×27, resized to 28×28), got {shape}"
            )
        return LeNet5((c, h, w), num_classes, config.dropout)
    if name == "cnn":
        c, h, w = shape
        if (h, w) != (32, 32):
            raise ConfigError(f"model 'cnn' expects 32×32 images of shape (C, 32, 32), got {shape}")
        return CNN((c, h, w), num_classes, config.dropout)
    if name == "resnet":
        c, h, w = shape
        if h < 8 or w < 8:
            raise ConfigError(f"model 'resnet' expects images of at least 8×8 (32×32 reference), got {shape}")
        return ResNet((c, h, w), num_classes, config.dropout, blocks=config.resnet_blocks)
    if name == "minilm":
        if len(shape) != 1:
            raise ConfigError(
                f"model 'minilm' expects word-piece ids of shape (L,) (encoder 'minilm-tokens'), got {shape}"
            )
        return MiniLMClassifier(shape[0], num_classes, config.dropout)
    valid = ", ".join(n for n in MODEL_NAMES)
    raise ConfigError(f"model.name must be one of {valid}; got {name!r}")


@runtime_checkable
class SelfInitializing(Protocol):
    """A layer that fills its own parameters and buffers from :func:`init_parameters`' generator (the
    layers of :mod:`tbal.uncertainty`)."""

    def init_from_generator(self, generator: torch.Generator) -> None: ...


@runtime_checkable
class Pretrained(Protocol):
    """A part that starts from published weights (:class:`tbal.minilm.MiniLMEncoder`): it loads them
    itself, and :func:`init_parameters` leaves everything inside it alone."""

    def load_pretrained_weights(self) -> None: ...


@torch.no_grad()
def init_parameters(model: nn.Module, seed: int) -> None:
    """Fill every parameter and buffer of ``model`` from ``torch.Generator().manual_seed(seed)``.

    Linear / conv layers: weights U(±g·√(3 / fan_in)), i.e. variance g² / fan_in, and zero biases (LeCun
    et al. 1998, "Efficient BackProp"; He et al. 2015), with the gain g of the activation that follows:
    5/3 for tanh networks, √2 for ReLU networks (``model.relu``), and 1 for the output layer
    (``model.head``), which feeds the softmax. (PyTorch's own default is U(±1/√fan_in), g = 1/√3, which
    makes tanh networks such as LeNet-5 learn several times slower at the papers' lr 0.01.)
    Batch norm: weight 1, bias 0, running mean 0, running variance 1. A classifier's input standardisation
    buffers: mean 0, sd 1 (the identity). Parameters are drawn on the CPU in
    module order and copied to the model's device, so a seed gives the same weights on every device.
    A :class:`Pretrained` part loads its published weights instead, and its sub-modules are skipped (it
    draws nothing from the generator, so the parameters after it are those of the same seed without it).
    Raises TypeError for a module type it does not know (so no parameter is left uninitialised).
    """
    generator = torch.Generator().manual_seed(int(seed))
    hidden_gain = math.sqrt(2.0) if getattr(model, "relu", False) else 5.0 / 3.0
    head = getattr(model, "head", None)
    loaded: set[int] = set()
    for module in model.modules():
        if id(module) in loaded:
            continue
        if isinstance(module, Pretrained):
            module.load_pretrained_weights()
            loaded.update(id(part) for part in module.modules())
        elif isinstance(module, Classifier):
            module.input_mean.zero_()
            module.input_std.fill_(1.0)
        elif isinstance(module, (nn.Linear, nn.Conv2d)):
            weight = module.weight
            gain = 1.0 if module is head else hidden_gain
            bound = gain * math.sqrt(3.0 / weight[0].numel())  # weight[0].numel() = fan_in
            weight.copy_(torch.empty(weight.shape).uniform_(-bound, bound, generator=generator))
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.BatchNorm2d):
            module.weight.fill_(1.0)
            module.bias.zero_()
            module.reset_running_stats()
        elif isinstance(module, SelfInitializing):
            # tbal.uncertainty's layers (spectral-norm vectors, random features, RBF centroids) fill their
            # own parameters and buffers from the same generator
            module.init_from_generator(generator)
        elif any(True for _ in module.parameters(recurse=False)):
            raise TypeError(f"init_parameters does not know how to initialise {type(module).__name__}")
        elif any(True for _ in module.buffers(recurse=False)):
            raise TypeError(f"init_parameters does not know the buffers of {type(module).__name__}")


_DEVICE_PATTERN = re.compile(r"^(cpu|cuda|cuda:\d+|mps)$")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else CPU. ``cpu``, ``cuda``, ``cuda:N`` and ``mps`` pass through
    (CUDA names raise when CUDA is not available); anything else raises ConfigError."""
    if not isinstance(name, str):
        raise ConfigError(f"device must be a string such as 'auto', 'cpu', 'cuda' or 'cuda:0', got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not _DEVICE_PATTERN.match(name):
        raise ConfigError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {name!r}")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} was asked for but CUDA is not available; use 'auto' or 'cpu'")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) are present")
    return torch.device(name)
