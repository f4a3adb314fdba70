"""tbal's predictions in Label Studio's shape: for ``/predict`` and for a Label Studio import file of
the queue.

A task's prediction is its item's auto-label (class and stored confidence) where a round auto-labeled
it, else the latest model's class with its calibrated confidence (``score``), scored by the service's
predict path (:func:`app.rounds.predict_service.predict`, artifacts cached per model version). Items are
scored as tbal stores them, in batches of ``max_batch_items``.
"""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.db.models import LabelStudioConnection, Project
from app.errors import Conflict, Invalid
from app.integrations.label_studio import repository as repo
from app.integrations.label_studio.label_config import ChoicesControl
from app.items import repository as items_repo
from app.items.arrays import from_bytes, layout_of, pixel_scale
from app.labels import repository as labels_repo
from app.labels.queue_service import ensure_sets_drawn
from app.rounds.predict_schemas import PredictItem, PredictRequest
from app.rounds.predict_service import ArtifactCache, predict

NO_MODEL_HINT = (
    "; press Train in Label Studio (or POST /api/v1/projects/{id}/rounds) once enough tasks are labeled"
)
QUEUE_PAGE = 10_000


@dataclass(frozen=True)
class Scored:
    """Per item (in the order asked): model version, class index, score, and whether it is an auto-label."""

    version: str
    labels: np.ndarray  # (n,) int64
    scores: np.ndarray  # (n,) float64
    auto: np.ndarray  # (n,) bool


AUTO_LABEL_MARKER = "auto-label"
"""``result[].tbal`` of an auto-label (an ε-guaranteed label of a round), ``model`` of a plain model
prediction: what annotators (and exports) tell them apart by."""


def ls_result(class_name: str, score: float, control: ChoicesControl, *, auto: bool) -> dict[str, Any]:
    """One choices result item, marked as tbal's auto-label or model prediction (``tbal``)."""
    return {
        "from_name": control.from_name,
        "to_name": control.to_name,
        "type": "choices",
        "value": {"choices": [class_name]},
        "score": score,
        "tbal": AUTO_LABEL_MARKER if auto else "model",
    }


def ls_prediction(
    version: str, class_name: str, score: float, control: ChoicesControl, *, auto: bool = False
) -> dict[str, Any]:
    """One Label Studio prediction: ``{"model_version", "score", "result": [choices]}``."""
    return {
        "model_version": version,
        "score": score,
        "result": [ls_result(class_name, score, control, auto=auto)],
    }


def load_items(session: Session, project: Project, item_ids: list[int]) -> np.ndarray:
    """The stored data of ``item_ids`` as an (n, *shape) array of the stored dtype, in that order."""
    layout = layout_of(project)
    raw = items_repo.data_by_ids(session, project.id, item_ids)
    joined = b"".join(raw[i] for i in item_ids)
    return from_bytes(layout, np.frombuffer(joined, dtype=np.uint8).reshape(len(item_ids), layout.row_bytes))


def score_items(
    session: Session,
    project: Project,
    item_ids: list[int],
    X: np.ndarray,
    cache: ArtifactCache,
    *,
    batch: int,
) -> Scored:
    """Auto-label or latest-model prediction of each item (``X``: their stored data, see
    :func:`load_items`); 409 before the first model."""
    auto = repo.auto_labels_of(session, project.id, item_ids)
    payload = layout_of(project).payload
    labels = np.empty(len(item_ids), dtype=np.int64)
    scores = np.empty(len(item_ids), dtype=np.float64)
    version = ""
    for start in range(0, len(item_ids), batch):
        part = X[start : start + batch]
        request = PredictRequest(items=[PredictItem(**{payload: row.tolist()}) for row in part])
        try:
            response = predict(session, project, request, cache)
        except Conflict as exc:
            raise Conflict(exc.field, exc.reason + NO_MODEL_HINT.format(id=project.id)) from exc
        version = response.model_version
        labels[start : start + len(part)] = [p.label for p in response.predictions]
        scores[start : start + len(part)] = [p.confidence for p in response.predictions]
    is_auto = np.zeros(len(item_ids), dtype=bool)
    for pos, item_id in enumerate(item_ids):
        if item_id in auto:
            labels[pos], scores[pos] = auto[item_id]
            is_auto[pos] = True
    return Scored(version=version, labels=labels, scores=scores, auto=is_auto)


def open_queries(session: Session, project_id: int) -> list[Any]:
    """Every open query (id, item_id, purpose, round_id, external_id), in query order."""
    rows: list[Any] = []
    after = 0
    while True:
        page = labels_repo.open_queries_page(session, project_id, after_id=after, limit=QUEUE_PAGE)
        rows.extend(page)
        if len(page) < QUEUE_PAGE:
            return rows
        after = page[-1].id


def queue_tasks(
    session: Session,
    project: Project,
    connection: LabelStudioConnection,
    cache: ArtifactCache,
    control: ChoicesControl | None,
    *,
    batch: int,
) -> list[dict[str, Any]]:
    """A Label Studio import file (a JSON list of tasks) of the open queue: ``data`` holds the item's
    external id (``id_field``), its data (``data_field``), ``tbal_purpose`` (validation / training / audit; a
    round's validation top-up is validation) and,
    for image projects, ``image`` (a PNG data URI to show); ``predictions`` the model's prediction once
    a model exists (then ``control`` is needed)."""
    ensure_sets_drawn(session, project)
    rows = open_queries(session, project.id)
    if not rows:
        return []
    item_ids = [int(r.item_id) for r in rows]
    X = load_items(session, project, item_ids)
    scored: Scored | None = None
    try:
        scored = score_items(session, project, item_ids, X, cache, batch=batch)
    except Conflict:
        scored = None
    if scored is not None and control is None:
        raise Invalid(
            "from_name",
            "give from_name and to_name (the Choices control's name and toName in your label config), "
            "or let Label Studio call /setup once so that tbal knows them",
        )
    tasks: list[dict[str, Any]] = []
    for pos, data in enumerate(task_data(project, connection, rows, X)):
        task: dict[str, Any] = {"data": data}
        if scored is not None and control is not None:
            k = int(scored.labels[pos])
            task["predictions"] = [
                ls_prediction(
                    scored.version,
                    project.classes[k],
                    float(scored.scores[pos]),
                    control,
                    auto=bool(scored.auto[pos]),
                )
            ]
        tasks.append(task)
    return tasks


def task_data(
    project: Project, connection: LabelStudioConnection, rows: Sequence[Any], X: np.ndarray
) -> list[dict[str, Any]]:
    """The Label Studio task data of queued items (``rows``: external_id, purpose; ``X``: their stored
    data): the external id (``id_field``), the data (``data_field``), ``tbal_purpose`` and, for image
    projects, ``image`` (a PNG data URI to show)."""
    layout = layout_of(project)
    scale = pixel_scale(layout, X, configured=project.settings.get("pixel_scale")) if len(X) else None
    out: list[dict[str, Any]] = []
    for pos, row in enumerate(rows):
        data: dict[str, Any] = {
            connection.id_field: row.external_id,
            connection.data_field: X[pos].tolist(),
            "tbal_purpose": row.purpose,
        }
        if layout.kind == "image" and scale is not None:
            data["image"] = png_data_uri(X[pos], scale)
        out.append(data)
    return out


def png_data_uri(pixels: np.ndarray, scale: float) -> str:
    """An H×W or H×W×C (C in 1, 3, 4) uint8 image as ``data:image/png;base64,...`` (8-bit grey, RGB or
    RGBA, unfiltered rows), its values stretched from [0, scale] to [0, 255] for display."""
    img = np.clip(np.rint(pixels.astype(np.float64) * (255.0 / scale)), 0, 255).astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        color = 0
    elif img.ndim == 3 and img.shape[2] in (3, 4):
        color = 2 if img.shape[2] == 3 else 6
    else:
        raise Invalid("image", f"expected an H×W or H×W×C image with C in 1, 3, 4, got shape {img.shape}")
    height, width = img.shape[:2]
    rows = np.concatenate([np.zeros((height, 1), dtype=np.uint8), img.reshape(height, -1)], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows.tobytes()))
        + _png_chunk(b"IEND", b"")
    )
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _png_chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)
