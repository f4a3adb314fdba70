"""Building a classifier from its configuration: the network (:mod:`tbal.networks`), wrapped for
uncertainty (:mod:`tbal.uncertainty`) when ``ModelConfig.uncertainty`` asks, its parameters filled from a
seed.

The networks' names are re-exported here (``from tbal.models import Classifier`` keeps working); the
modules below the model factory (training, AUM, uncertainty, prediction) import them from
:mod:`tbal.networks`, so that no import cycle runs through this module.
"""

from __future__ import annotations

import torch

from tbal.config import ConfigError, ModelConfig
from tbal.networks import (
    CNN,
    MLP,
    Classifier,
    LeNet5,
    ResNet,
    SeededDropout,
    auto_name,
    construct,
    init_parameters,
    resolve_device,
)
from tbal.uncertainty import build_uncertainty_model

__all__ = [
    "CNN",
    "MLP",
    "Classifier",
    "LeNet5",
    "ResNet",
    "SeededDropout",
    "build_model",
    "init_parameters",
    "network_name",
    "resolve_device",
]


def network_name(config: ModelConfig, input_shape: tuple[int, ...]) -> str:
    """The network ``config`` builds for inputs of ``input_shape``: its name, or for ``auto`` the one the
    shape picks (see :func:`build_model`)."""
    return config.name if config.name != "auto" else auto_name(tuple(int(s) for s in input_shape))


def build_model(
    config: ModelConfig, input_shape: tuple[int, ...], num_classes: int, *, seed: int | None = None
) -> Classifier:
    """MLP for (d,) inputs, LeNet-5 for (1|3, 28|32, 28|32), CNN / ResNet for (3, 32, 32).
    ``auto`` chooses by shape. Raises ConfigError for a model that does not fit the shape.

    ``auto``: feature vectors (d,) → MLP; colour 3×32×32 images → CNN; other images → LeNet-5 (which
    also takes square images from 8×8 up to 28×28, resized to 28×28). The parameters are initialised from
    ``seed`` (0 when None) with a local generator; the global RNG is neither read nor advanced.
    """
    shape = tuple(int(s) for s in input_shape)
    if any(s <= 0 for s in shape):
        raise ConfigError(f"input_shape must hold positive sizes, got {input_shape}")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ConfigError(f"num_classes must be an integer ≥ 2, got {num_classes!r}")
    name = network_name(config, shape)
    # Build on the meta device: no memory is written and no random numbers are drawn; init_parameters fills
    # every parameter and buffer afterwards.
    with torch.device("meta"):
        model = construct(name, config, shape, num_classes)
        if config.uncertainty != "none":
            model = build_uncertainty_model(model, config)
    model = model.to_empty(device="cpu")
    init_parameters(model, 0 if seed is None else seed)
    return model
