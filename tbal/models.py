"""Classifiers returning logits and penultimate features.

CONTRACT (stub, to be implemented): keep these names and signatures.
"""

from __future__ import annotations

import torch
from torch import nn

from tbal.config import ModelConfig


class Classifier(nn.Module):
    """Base of every classifier: ``forward(x) -> (logits (n, K), features (n, d))``."""

    num_classes: int
    feature_dim: int

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError


def build_model(config: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> Classifier:
    """MLP for (d,) inputs, LeNet-5 for (1|3, 28|32, 28|32), CNN / ResNet for (3, 32, 32).
    ``auto`` chooses by shape. Raises ConfigError for a model that does not fit the shape."""
    raise NotImplementedError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else CPU."""
    raise NotImplementedError
