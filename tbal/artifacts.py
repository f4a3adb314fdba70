"""Saving and loading one round's artifacts (classifier, confidence function, thresholds) to a file.

The file is a ``torch.save`` archive of plain data: the classifier's state dict plus what rebuilds it
(model config, input shape, number of classes), the pickled confidence function and the thresholds.
Only load files that this service wrote (pickle can run code).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tbal.confidence import ConfidenceFunction
from tbal.config import ModelConfig
from tbal.models import Classifier, build_model

FORMAT_VERSION = 1


@dataclass
class RoundArtifacts:
    """What predicting with a round's model needs."""

    model: Classifier
    confidence: ConfidenceFunction
    thresholds: np.ndarray  # (K,), +inf where a class is not auto-labeled
    model_config: ModelConfig
    input_shape: tuple[int, ...]
    num_classes: int


def save_artifacts(path: str | Path, artifacts: RoundArtifacts) -> None:
    """Write ``artifacts`` to ``path`` (parent folders are created; written to a temporary name and
    renamed, so a reader never sees half a file)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "model_state": {k: v.detach().cpu() for k, v in artifacts.model.state_dict().items()},
        "model_config": dataclasses.asdict(artifacts.model_config),
        "input_shape": list(artifacts.input_shape),
        "num_classes": artifacts.num_classes,
        "confidence": artifacts.confidence,
        "thresholds": np.asarray(artifacts.thresholds, dtype=np.float64),
    }
    tmp = target.with_name(target.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(target)


def load_artifacts(path: str | Path) -> RoundArtifacts:
    """Read what :func:`save_artifacts` wrote; the model is rebuilt on the CPU in eval mode."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=False)
    if payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"unsupported artifact format {payload.get('format_version')!r} in {path}")
    raw = dict(payload["model_config"])
    raw["hidden"] = tuple(raw["hidden"])
    model_config = ModelConfig(**raw)
    input_shape = tuple(int(s) for s in payload["input_shape"])
    model = build_model(model_config, input_shape, int(payload["num_classes"]))
    model.load_state_dict(payload["model_state"])
    model.eval()
    return RoundArtifacts(
        model=model,
        confidence=payload["confidence"],
        thresholds=np.asarray(payload["thresholds"], dtype=np.float64),
        model_config=model_config,
        input_shape=input_shape,
        num_classes=int(payload["num_classes"]),
    )
