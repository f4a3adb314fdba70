"""Confidence functions under one base class, and the factory that builds them from a config.

Each scores the classifier's predicted class ŷ: ``softmax`` (max softmax probability), ``temperature``
(temperature scaling), ``histogram`` (top-label histogram binning), ``scaling-binning``, ``dirichlet``
(Dirichlet calibration), ``colander`` (the trained confidence function of "Pearls from Pebbles") and
``kernel`` (DUQ's own certainty max_c K_c; only for ``model.uncertainty = duq``, which the configuration
checks).
"""

from __future__ import annotations

from collections.abc import Callable

from tbal.confidence.base import ConfidenceFunction
from tbal.confidence.colander import Colander
from tbal.confidence.dirichlet import DirichletCalibration
from tbal.confidence.histogram import HistogramBinning
from tbal.confidence.kernel import KernelConfidence
from tbal.confidence.scaling_binning import ScalingBinning
from tbal.confidence.softmax import SoftmaxConfidence
from tbal.confidence.temperature import TemperatureScaling
from tbal.config import CONFIDENCE_NAMES, ConfidenceConfig, ConfigError

__all__ = [
    "Colander",
    "ConfidenceFunction",
    "DirichletCalibration",
    "HistogramBinning",
    "KernelConfidence",
    "ScalingBinning",
    "SoftmaxConfidence",
    "TemperatureScaling",
    "make_confidence",
]

_BUILDERS: dict[str, Callable[[ConfidenceConfig, int], ConfidenceFunction]] = {
    "softmax": lambda config, k: SoftmaxConfidence(k),
    "temperature": lambda config, k: TemperatureScaling(k),
    "histogram": lambda config, k: HistogramBinning(k, points_per_bin=config.histogram_points_per_bin),
    "scaling-binning": lambda config, k: ScalingBinning(k, n_bins=config.scaling_binning_bins),
    "dirichlet": lambda config, k: DirichletCalibration(k, reg=config.dirichlet_reg),
    "colander": lambda config, k: Colander(k, config.colander),
    "kernel": lambda config, k: KernelConfidence(k),
}
assert set(_BUILDERS) == set(CONFIDENCE_NAMES), "every configured confidence name needs a builder"


def make_confidence(config: ConfidenceConfig, num_classes: int) -> ConfidenceFunction:
    """The (unfitted) confidence function named by ``config.name`` (softmax, temperature, histogram,
    scaling-binning, dirichlet, colander, kernel) for ``num_classes`` classes; raises
    :class:`~tbal.config.ConfigError` listing the valid names for an unknown name."""
    if not isinstance(config, ConfidenceConfig):
        raise ConfigError(f"expected a ConfidenceConfig, got {type(config).__name__}")
    builder = _BUILDERS.get(config.name)
    if builder is None:
        raise ConfigError(
            f"unknown confidence function {config.name!r}; valid names: {', '.join(CONFIDENCE_NAMES)}"
        )
    return builder(config, num_classes)
