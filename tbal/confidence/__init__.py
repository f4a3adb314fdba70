"""Confidence functions under one base class, and the factory that builds them from a config.

CONTRACT (stub, to be implemented): ``make_confidence`` raises ConfigError listing valid names.
"""

from __future__ import annotations

from tbal.config import ConfidenceConfig
from tbal.confidence.base import ConfidenceFunction

__all__ = ["ConfidenceFunction", "make_confidence"]


def make_confidence(config: ConfidenceConfig, num_classes: int) -> ConfidenceFunction:
    """The confidence function named by ``config.name`` (softmax, temperature, histogram,
    scaling-binning, dirichlet, colander)."""
    raise NotImplementedError
