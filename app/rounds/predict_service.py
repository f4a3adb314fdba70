"""Scoring new items with the latest model version (a round's saved artifacts)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy.orm import Session

from app.db.models import Project, Round
from app.errors import Conflict, Invalid
from app.items.arrays import Layout, json_batch, layout_of, model_inputs, pixel_scale
from app.rounds import repository as rounds_repo
from app.rounds.predict_schemas import Prediction, PredictRequest, PredictResponse
from tbal.reports import RoundReport

if TYPE_CHECKING:
    from tbal.artifacts import RoundArtifacts


class ArtifactCache:
    """The last few loaded round artifacts, by path (loading a model costs far more than scoring)."""

    def __init__(self, size: int = 4, *, device: str = "auto") -> None:
        self._size = size
        self.device = device
        """Where loaded models score (``settings.train_device``: ``auto`` is CUDA when present)."""
        self._items: OrderedDict[str, RoundArtifacts] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str) -> RoundArtifacts:
        from tbal.artifacts import load_artifacts

        with self._lock:
            if path in self._items:
                self._items.move_to_end(path)
                return self._items[path]
        artifacts = load_artifacts(path)
        with self._lock:
            self._items[path] = artifacts
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return artifacts


def predict(
    session: Session, project: Project, body: PredictRequest, cache: ArtifactCache
) -> PredictResponse:
    from tbal.loop import score_points

    layout = layout_of(project)
    for i, item in enumerate(body.items):
        if (item.features if layout.kind == "features" else item.image) is None:
            raise Invalid(
                f"items.{i}.{layout.payload}", f"this project takes {layout.kind}: give '{layout.payload}'"
            )
    latest = rounds_repo.last_succeeded(session, project.id)
    if latest is None or latest.artifact_path is None or latest.model_version is None:
        raise Conflict("model", "no model yet: run a round first")
    session.commit()  # end the read transaction before the slow part (loading the model, scoring)
    if not Path(latest.artifact_path).is_file():
        raise Conflict("model", f"the artifacts of {latest.model_version} are missing on this server")
    X = json_batch(
        layout, [item.features if layout.kind == "features" else item.image for item in body.items], "items"
    )
    artifacts = cache.get(latest.artifact_path)
    scale = _input_scale(artifacts, latest, layout, X, project)
    predicted, scores, clears = score_points(
        artifacts.model,
        artifacts.confidence,
        artifacts.thresholds,
        model_inputs(layout, X, scale),
        device=cache.device,
    )
    return PredictResponse(
        model_version=latest.model_version,
        round_id=latest.id,
        predictions=[
            Prediction(
                label=int(k),
                class_name=project.classes[int(k)],
                confidence=float(s),
                clears_threshold=bool(c),
            )
            for k, s, c in zip(np.asarray(predicted), np.asarray(scores), np.asarray(clears), strict=True)
        ],
    )


def _input_scale(
    artifacts: RoundArtifacts, round_: Round, layout: Layout, X: np.ndarray, project: Project
) -> float | None:
    """The pixel divisor the round's model was trained with: from its artifact; for an artifact saved
    before it held one, the round's report; for a round before that, the project's setting or the
    batch's own range (:func:`app.items.arrays.pixel_scale`). None for features."""
    if layout.kind != "image":
        return None
    if artifacts.input_scale is not None:
        return artifacts.input_scale
    recorded = RoundReport.from_dict(round_.metrics).input_scale
    if recorded is not None:
        return recorded
    return pixel_scale(layout, X, configured=project.settings.get("pixel_scale"))
