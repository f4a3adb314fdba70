"""Saving and loading one round's artifacts (classifier, confidence function, thresholds) to a file.

The file is a ``torch.save`` archive of plain data: the classifier's state dict plus what rebuilds it
(model config, input shape, number of classes), the pickled confidence function, the thresholds, and
what turns a new item into the classifier's input the way the round's items were turned: the pixel
divisor of image projects (``input_scale``) and the text encoder of text projects (``encoder``).
Format 1 files (before those two) load with both None. Only load files that this service wrote (pickle
can run code).
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

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


@dataclass
class RoundArtifacts:
    """What predicting with a round's model needs."""

    model: Classifier
    confidence: ConfidenceFunction
    thresholds: np.ndarray  # (K,), +inf where a class is not auto-labeled
    model_config: ModelConfig
    input_shape: tuple[int, ...]
    num_classes: int
    input_scale: float | None = None  # images: pixels are divided by this (tbal.data.prepare_inputs)
    encoder: str | None = None  # text: the encoder spec (tbal.encoders) that made the features


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
        "input_scale": None if artifacts.input_scale is None else float(artifacts.input_scale),
        "encoder": artifacts.encoder,
    }
    tmp = target.with_name(target.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(target)


def load_artifacts(path: str | Path) -> RoundArtifacts:
    """Read what :func:`save_artifacts` wrote; the model is rebuilt on the CPU in eval mode."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=False)
    if payload.get("format_version") not in READABLE_VERSIONS:
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
        input_scale=None if payload.get("input_scale") is None else float(payload["input_scale"]),
        encoder=payload.get("encoder"),
    )
