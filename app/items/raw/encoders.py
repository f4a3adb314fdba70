"""The project's encoder: chosen by its settings, checked at project creation and on a settings change,
built once per process (loading MiniLM takes seconds), and recorded with every round's model version.

Text projects encode with ``settings.encoder`` (default ``minilm``, ``minilm-tokens`` for the ``minilm``
model; see :mod:`tbal.encoders`); feature
projects of an image backbone (``image-backbone:<file>`` with ``image_shape``) store its features;
image projects store pixels and take no encoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from app.db.models import Project
from app.errors import Conflict, Invalid
from app.items import repository as items_repo
from tbal.config import ConfigError, ModelConfig
from tbal.encoders import (
    DEFAULT_TEXT_ENCODER,
    EncoderConfig,
    TextEncoder,
    encoder_for_model,
    make_text_encoder,
    parse_encoder,
)
from tbal.encoders.backbone import ImageBackboneEncoder
from tbal.encoders.images import ImageError
from tbal.encoders.images import check_shape as check_image_shape


def service_device(train_device: str) -> str:
    """The encoders' device for the service's ``train_device`` (``cuda:1`` and such fall back to cpu:
    encoders take cpu, cuda or auto)."""
    return train_device if train_device in ("cpu", "cuda", "auto") else "cpu"


def encoder_spec(settings: dict[str, Any]) -> str:
    """A text project's encoder spec (setting ``encoder``; default ``minilm``)."""
    return str(settings.get("encoder") or DEFAULT_TEXT_ENCODER)


def encoder_config(spec: str, *, device: str = "cpu", kind: str | None = "text") -> EncoderConfig:
    """The checked config of ``spec`` (of an encoder of ``kind``, any when None); a bad one is a 422 on
    ``settings.encoder``."""
    try:
        config = parse_encoder(spec, device=device if device in ("cpu", "cuda", "auto") else "cpu")
    except ConfigError as exc:
        raise Invalid("settings.encoder", str(exc)) from exc
    if kind == "text" and config.kind != "text":
        raise Invalid("settings.encoder", f"{config.name} encodes images; text projects take a text encoder")
    if kind == "image" and config.kind != "image":
        raise Invalid(
            "settings.encoder", f"{config.name} encodes text; feature projects of images take image-backbone"
        )
    return config


def text_encoder(settings: dict[str, Any], *, device: str = "cpu") -> TextEncoder:
    """The project's text encoder, built once per process and spec (loading MiniLM takes seconds)."""
    return _cached_encoder(encoder_config(encoder_spec(settings), device=device))


@lru_cache(maxsize=4)
def _cached_encoder(config: EncoderConfig) -> TextEncoder:
    try:
        return make_text_encoder(config)
    except ConfigError as exc:
        raise Invalid("settings.encoder", str(exc)) from exc


def image_encoder(settings: dict[str, Any], *, device: str = "cpu") -> ImageBackboneEncoder:
    """A feature project's frozen image backbone (settings ``encoder`` = ``image-backbone:<file>`` and
    ``image_shape``), built once per process, file and shape; its ``dim`` found by one forward pass."""
    config = encoder_config(str(settings.get("encoder") or ""), device=device, kind="image")
    shape = settings.get("image_shape")
    if not shape:
        raise Invalid("settings.image_shape", "an image backbone needs the image shape it reads: [H, W, C]")
    try:
        image_shape = check_image_shape(shape)
    except ImageError as exc:
        raise Invalid("settings.image_shape", str(exc)) from exc
    return _cached_image_encoder(config, image_shape)


@lru_cache(maxsize=2)
def _cached_image_encoder(config: EncoderConfig, image_shape: tuple[int, ...]) -> ImageBackboneEncoder:
    try:
        encoder = ImageBackboneEncoder(config, image_shape)
        _ = encoder.dim  # loads the program and runs a blank image through it
    except ConfigError as exc:
        raise Invalid("settings.encoder", str(exc)) from exc
    except (RuntimeError, ValueError) as exc:  # the program refuses inputs of this shape
        raise Invalid(
            "settings.image_shape", f"the backbone cannot read images of {image_shape}: {exc}"
        ) from exc
    return encoder


def takes_image_files(project: Project) -> bool:
    """Image projects (pixels stored) and feature projects with an image backbone (its features stored)."""
    return project.data_kind == "image" or (
        project.data_kind == "features"
        and str(project.settings.get("encoder") or "").startswith("image-backbone")
    )


def require_image_files(project: Project) -> None:
    """422 on ``data_kind`` unless the project takes image files (:func:`takes_image_files`)."""
    if not takes_image_files(project):
        raise Invalid(
            "data_kind",
            f"this project holds {project.data_kind}; image files go to image projects, or to feature "
            "projects with an image-backbone encoder",
        )


def with_model_encoder(data_kind: str, settings: dict[str, Any], model: ModelConfig) -> dict[str, Any]:
    """``settings`` with the encoder the project's classifier reads: model ``minilm`` (MiniLM fine-tuned)
    reads word pieces, so a text project with it gets ``minilm-tokens`` unless it names an encoder. A 422
    when the model cannot read the named encoder, or for ``minilm`` in a project that does not hold texts
    (:func:`tbal.encoders.encoder_for_model`)."""
    if model.name == "minilm" and data_kind != "text":
        raise Invalid("settings.model", "model minilm fine-tunes MiniLM on texts: text projects only")
    if data_kind != "text":
        return settings
    try:
        spec = encoder_for_model(model, settings.get("encoder"))
    except ConfigError as exc:
        raise Invalid("settings.encoder", str(exc)) from exc
    return settings if spec == encoder_spec(settings) else {**settings, "encoder": spec}


def check_encoder_allowed(spec: str | None, model_dirs: Sequence[Path]) -> None:
    """A ``sentence-transformers:<dir>`` encoder only inside the operator's ``encoder_model_dirs``
    (checked before the directory is looked at, so that nothing is said about other paths)."""
    if not spec:
        return
    config = encoder_config(spec, kind=None)
    if config.name not in ("sentence-transformers", "image-backbone"):
        return
    target = Path(str(config.path)).resolve()
    if not any(target.is_relative_to(Path(root).resolve()) for root in model_dirs):
        raise Invalid(
            "settings.encoder",
            "model directories must lie in a folder the operator allows (TBAL_ENCODER_MODEL_DIRS); "
            "otherwise use minilm or hashing",
        )


def check_project_settings(data_kind: str, settings: dict[str, Any], input_shape: list[int]) -> list[int]:
    """At project creation: the ``input_shape`` of a text project, or of a feature project with an image
    backbone, is ``[dim]`` of its encoder (given or not); image projects take no encoder. Returns the
    input shape to store."""
    dim = _encoder_dim(data_kind, settings)
    if dim is None:
        return input_shape
    if input_shape and list(input_shape) != [dim]:
        raise Invalid(
            "input_shape",
            f"encoder {settings.get('encoder') or DEFAULT_TEXT_ENCODER} gives {dim} features: "
            f"give [{dim}] or nothing",
        )
    return [dim]


def _encoder_dim(data_kind: str, settings: dict[str, Any]) -> int | None:
    """The feature size of the project's encoder; None for projects without one."""
    if data_kind == "text":
        if settings.get("image_shape"):
            raise Invalid("settings.image_shape", "only feature projects with an image backbone take it")
        return text_encoder(settings).dim
    if data_kind == "features" and settings.get("encoder"):
        return image_encoder(settings).dim
    if settings.get("encoder"):
        raise Invalid(
            "settings.encoder",
            "image projects store pixels; for a backbone's features use data_kind 'features' with "
            "encoder image-backbone:<file> and image_shape",
        )
    if settings.get("image_shape"):
        raise Invalid("settings.image_shape", "only feature projects with an image backbone take it")
    return None


def check_settings_change(session: Session, project: Project, merged: dict[str, Any]) -> None:
    """A settings change may not switch a text project's encoder once it has items (their stored features
    come from the old one), nor give an encoder to another kind of project. Before any item, a new
    encoder sets the project's ``input_shape`` to its size."""
    new, old = merged.get("encoder"), project.settings.get("encoder")
    same = (merged.get("encoder"), merged.get("image_shape")) == (old, project.settings.get("image_shape"))
    if same:
        return
    dim = _encoder_dim(project.data_kind, merged)
    if dim is None:
        return
    if items_repo.has_items(session, project.id):
        raise Conflict(
            "settings.encoder",
            f"the project's items were encoded by {old or DEFAULT_TEXT_ENCODER}; "
            f"an encoder change needs a new project (got {new})",
        )
    project.input_shape = [dim]  # written with the settings by the caller's commit


def round_record(project_settings: dict[str, Any], data_kind: str) -> dict[str, str]:
    """What a round records about its inputs' encoder (``{"encoder": spec}`` for text projects and
    feature projects of an image backbone)."""
    if data_kind == "text":
        return {"encoder": encoder_spec(project_settings)}
    if project_settings.get("encoder"):
        return {"encoder": str(project_settings["encoder"])}
    return {}
