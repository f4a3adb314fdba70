"""Raw items: text for ``data_kind: "text"`` projects and image files for image projects.

Text: each string is encoded by the project's encoder (setting ``encoder``, default ``minilm``; see
:mod:`tbal.encoders`) into a float32 feature vector stored in ``items.data`` exactly as a feature
project's, so that rounds, predictions and exports treat a text project as a feature project; the string
itself goes to ``item_texts``. Images: each file is decoded by Pillow to the project's ``input_shape``
(:func:`tbal.encoders.images.decode_image`) and stored as uint8, as an uploaded array would be.

Entry points for other parts of the service (the Label Studio integration creates items from task data
with them): :func:`ingest_texts` (external ids, strings, optional classes) and :func:`ingest_images`
(named files). Both check every item first, then write everything in one transaction and commit (all or
nothing), idempotent on external id like the array uploads: items whose id exists are skipped (and are
not encoded again).

Encoding runs in the request's worker thread, batch by batch (MiniLM on 2 CPU cores: ~90 sentences/s);
there is no background encoding job yet.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from app.db.models import Item, Project
from app.errors import Conflict, Invalid
from app.repositories import item_texts as texts_repo
from app.repositories import items as items_repo
from app.schemas.items import IngestResult
from app.services.arrays import layout_of
from app.services.classes import class_index
from app.services.fetch import fetch_bytes
from app.services.ingest import _check_unique, _store
from tbal.config import ConfigError
from tbal.encoders import DEFAULT_TEXT_ENCODER, EncoderConfig, TextEncoder, make_text_encoder, parse_encoder
from tbal.encoders.backbone import ImageBackboneEncoder
from tbal.encoders.images import FORMATS, MAX_FILE_BYTES, ImageError, decode_image
from tbal.encoders.images import check_shape as check_image_shape
from tbal.errors import DataError
from tbal.text_files import TextRecords, read_text_records

MAX_EXTERNAL_ID = 255
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
MAX_ARCHIVE_MEMBERS = 100_000
MAX_ARCHIVE_BYTES = 2 << 30
"""Most bytes all images of one archive may expand to."""
MAX_PREDICT_FILES = 1_000
DECODE_THREADS = max(1, min(4, os.cpu_count() or 1))
"""Threads that decode one upload's image files."""
MAX_MEMBER_RATIO = 100
"""Largest expansion ratio of one compressed zip member (a PNG or JPEG barely compresses further)."""
IGNORED_PARTS = ("__MACOSX",)


# --------------------------------------------------------------------------------------------- encoders


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
    if session.scalar(select(exists().where(Item.project_id == project.id))):
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


# ------------------------------------------------------------------------------------------------- text


def ingest_text_file(
    session: Session,
    project: Project,
    path: Path,
    *,
    fmt: str | None,
    text_column: str,
    id_column: str | None,
    label_column: str | None,
    id_prefix: str,
    chunk_rows: int,
    device: str = "cpu",
) -> IngestResult:
    """A JSON list, JSONL or CSV file of texts (see :mod:`tbal.text_files`) into a text project."""
    require_kind(project, "text")
    try:
        records = read_text_records(
            path.read_bytes(),
            fmt=fmt,
            text_column=text_column,
            id_column=id_column,
            label_column=label_column,
        )
    except DataError as exc:
        raise Invalid("file", str(exc)) from exc
    ids = records.ids if records.ids is not None else [f"{id_prefix}{i}" for i in range(len(records))]
    return ingest_texts(
        session, project, ids, records.texts, records.labels, chunk_rows=chunk_rows, device=device
    )


def ingest_texts(
    session: Session,
    project: Project,
    external_ids: Sequence[str],
    texts: Sequence[str],
    labels: Sequence[str | int | None] | None = None,
    *,
    chunk_rows: int = 5_000,
    device: str = "cpu",
) -> IngestResult:
    """Store texts (and their features) as items of a text project; ``labels``: ground truth (class
    names or indices, None for unknown), for simulations and audits only. Checks everything, encodes the
    new ones (ids not yet in the project), writes items and texts in one transaction and commits."""
    require_kind(project, "text")
    records = _checked_texts(project, external_ids, texts, labels)
    known = items_repo.ids_by_external(session, project.id, records.ids or [])
    new = [i for i, ext in enumerate(records.ids or []) if ext not in known]
    encoder = text_encoder(project.settings, device=device)
    try:
        X = encoder.encode([records.texts[i] for i in new])
    except (DataError, ValueError) as exc:
        raise Invalid("texts", str(exc)) from exc
    layout = layout_of(project)
    if X.shape[1:] != layout.shape:
        raise Invalid(
            "settings.encoder", f"encoder gives {X.shape[1:]} features, project stores {layout.shape}"
        )
    ids = [str((records.ids or [])[i]) for i in new]
    truth = np.array([_truth(project, records.labels, i) for i in new], dtype=np.int64)
    texts_repo.add_texts(session, project.id, ids, [records.texts[i] for i in new])
    result = _store(session, project, layout, X, ids, truth, chunk_rows)
    n = len(records)
    return IngestResult(
        received=n,
        inserted=result.inserted,
        skipped=n - result.inserted,
        ground_truth_added=result.ground_truth_added,
    )


def encode_texts(project: Project, texts: Sequence[str], *, device: str = "cpu") -> np.ndarray:
    """(n,) texts -> (n, d) float32 features by the project's encoder (for predictions; nothing stored);
    422 on ``texts.<i>`` for a text that cannot be encoded."""
    require_kind(project, "text")
    from tbal.encoders import text_problem

    for i, t in enumerate(texts):
        problem = text_problem(t)
        if problem:
            raise Invalid(f"texts.{i}", problem)
    return text_encoder(project.settings, device=device).encode(list(texts))


def _checked_texts(
    project: Project,
    external_ids: Sequence[str],
    texts: Sequence[str],
    labels: Sequence[str | int | None] | None,
) -> TextRecords:
    if len(external_ids) != len(texts) or (labels is not None and len(labels) != len(texts)):
        raise Invalid("texts", "expected as many ids (and labels) as texts")
    if not texts:
        raise Invalid("texts", "no text items")
    from tbal.encoders import text_problem

    for i, (ext, t) in enumerate(zip(external_ids, texts, strict=True)):
        _check_id(ext, f"texts.{i}.external_id")
        problem = text_problem(t)
        if problem:
            raise Invalid(f"texts.{i}.text", problem)
    _check_unique(list(external_ids), "texts", per_item=True)
    records = TextRecords(list(texts), list(external_ids), list(labels) if labels is not None else None)
    for i in range(len(texts)):
        _truth(project, records.labels, i)
    return records


def _truth(project: Project, labels: Sequence[str | int | None] | None, i: int) -> int:
    if labels is None or labels[i] is None:
        return -1
    return class_index(project.classes, labels[i], f"texts.{i}.ground_truth")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------- images


@dataclass(frozen=True)
class ImageFile:
    """One uploaded image: its name (file name or archive path, the item's id after ``id_prefix``)."""

    name: str
    data: bytes


def ingest_images(
    session: Session,
    project: Project,
    files: Sequence[ImageFile],
    *,
    id_prefix: str = "",
    labels_from_folders: bool = False,
    labels: Sequence[str | int | None] | None = None,
    chunk_rows: int = 5_000,
) -> IngestResult:
    """Decode image files to the project's ``input_shape`` and store them as uint8 items with ids
    ``<id_prefix><name>``; with ``labels_from_folders`` each file's parent folder names its class (the
    image-folder layout ``cat/001.png``), or ``labels`` gives each file's class (None: unknown).
    Every file is decoded before anything is written: a bad one is a 422 naming it (``files.<name>``)
    and nothing is stored."""
    require_image_files(project)
    if not files:
        raise Invalid("files", "no image files in the request")
    layout = layout_of(project)
    backbone = image_encoder(project.settings) if project.data_kind == "features" else None
    decode_shape = backbone.image_shape if backbone is not None else layout.shape
    ids = [f"{id_prefix}{f.name}" for f in files]
    for ext, f in zip(ids, files, strict=True):
        _check_id(ext, f"files.{f.name}")
    _check_unique(ids, "files", per_item=False)
    known = items_repo.ids_by_external(session, project.id, ids)
    new = [i for i, ext in enumerate(ids) if ext not in known]
    X = np.empty((len(new), *decode_shape), dtype=np.uint8)
    truth = np.full(len(new), -1, dtype=np.int64)
    _decode_into(X, [files[i] for i in new], decode_shape)
    for row, i in enumerate(new):
        name = files[i].name
        if labels is not None and labels[i] is not None:
            truth[row] = class_index(project.classes, labels[i], f"files.{name}.ground_truth")  # type: ignore[arg-type]
        elif labels_from_folders:
            folder = PurePosixPath(name).parent.name
            if not folder:
                raise Invalid(f"files.{name}", "labels_from_folders: the file is in no folder")
            truth[row] = class_index(project.classes, folder, f"files.{name}")
    stored = backbone.encode(X) if backbone is not None else X  # (n, dim) float32 features, or the pixels
    result = _store(session, project, layout, stored, [ids[i] for i in new], truth, chunk_rows)
    n = len(files)
    return IngestResult(
        received=n,
        inserted=result.inserted,
        skipped=n - result.inserted,
        ground_truth_added=result.ground_truth_added,
    )


def fetch_images(
    urls: Sequence[str], names: Sequence[str], *, max_bytes: int, timeout_s: float, allow_private: bool
) -> list[ImageFile]:
    """Fetch image files by URL (public addresses only unless ``allow_private``; see
    :mod:`app.services.fetch`), each named by ``names`` (422 on ``urls.<i>`` for one that fails)."""
    return [
        ImageFile(name, fetch_bytes(url, f"urls.{i}", max_bytes=max_bytes, timeout_s=timeout_s,
                                    allow_private=allow_private))
        for i, (url, name) in enumerate(zip(urls, names, strict=True))
    ]  # fmt: skip


def _decode_into(out: np.ndarray, files: Sequence[ImageFile], shape: tuple[int, ...]) -> None:
    """Decode ``files`` into ``out`` (n, *shape) on :data:`DECODE_THREADS` threads (Pillow releases the
    GIL while it decodes); the first bad file in order is a 422 naming it."""

    def one(row: int) -> str | None:
        try:
            out[row] = decode_image(files[row].data, shape)
        except ImageError as exc:
            return str(exc)
        return None

    if len(files) < 2 * DECODE_THREADS:
        problems = [one(row) for row in range(len(files))]
    else:
        with ThreadPoolExecutor(max_workers=DECODE_THREADS) as pool:
            problems = list(pool.map(one, range(len(files)), chunksize=64))
    for row, problem in enumerate(problems):
        if problem is not None:
            raise Invalid(f"files.{files[row].name}", problem)


def predict_items_of_images(project: Project, files: Sequence[ImageFile]) -> list[dict[str, Any]]:
    """Image files -> the ``/predict`` payload of each: ``{"image": pixels}`` for an image project,
    ``{"features": backbone output}`` for a feature project of a backbone; 422 naming a bad file."""
    require_image_files(project)
    backbone = image_encoder(project.settings) if project.data_kind == "features" else None
    shape = backbone.image_shape if backbone is not None else layout_of(project).shape
    pixels = np.empty((len(files), *shape), dtype=np.uint8)
    _decode_into(pixels, files, tuple(shape))
    if backbone is None:
        return [{"image": x.tolist()} for x in pixels]
    return [{"features": row} for row in backbone.encode(pixels).tolist()]


def is_archive(name: str, head: bytes) -> bool:
    """A zip or tar (plain, gzip, bzip2, xz) file, by its first bytes or its name."""
    lower = name.lower()
    if lower.endswith((".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        return True
    return head.startswith((b"PK\x03\x04", b"\x1f\x8b", b"BZh", b"\xfd7zXZ")) or head[257:262] == b"ustar"


def archive_images(data: bytes | Path, field: str = "file") -> list[ImageFile]:
    """The image files of a zip or tar archive, named by their paths inside it. Refused (422 on
    ``field``): paths that are absolute or climb out (``..``), links and devices, more than
    :data:`MAX_ARCHIVE_MEMBERS` files, more than :data:`MAX_ARCHIVE_BYTES` expanded, a zip member that
    expands more than :data:`MAX_MEMBER_RATIO` times. Folders, hidden files and ``__MACOSX`` are skipped;
    a file with another suffix than PNG/JPEG/WebP/BMP is an error naming it."""
    source: Path | io.BytesIO = data if isinstance(data, Path) else io.BytesIO(data)
    head = _head(source)
    if head.startswith(b"PK"):
        return list(_zip_members(source, field))
    return list(_tar_members(source, field))


def _head(source: Path | io.BytesIO) -> bytes:
    if isinstance(source, Path):
        with source.open("rb") as handle:
            return handle.read(4)
    return source.getvalue()[:4]


def _zip_members(source: Path | io.BytesIO, field: str) -> Iterator[ImageFile]:
    try:
        archive = zipfile.ZipFile(source)
    except zipfile.BadZipFile as exc:
        raise Invalid(field, f"not a readable zip archive: {exc}") from exc
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        _check_members(len(infos), sum(i.file_size for i in infos), field)
        for info in infos:
            name = _member_name(info.filename, field)
            if name is None:
                continue
            if info.file_size > MAX_MEMBER_RATIO * max(info.compress_size, 1) and info.file_size > 1 << 20:
                raise Invalid(f"{field}.{name}", f"expands more than {MAX_MEMBER_RATIO} times (zip bomb?)")
            try:
                yield ImageFile(name, archive.read(info))
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
                raise Invalid(f"{field}.{name}", f"cannot read this archive member: {exc}") from exc


def _tar_members(source: Path | io.BytesIO, field: str) -> Iterator[ImageFile]:
    try:
        if isinstance(source, Path):
            archive = tarfile.open(name=source, mode="r:*")  # noqa: SIM115 (closed by the with below)
        else:
            archive = tarfile.open(fileobj=source, mode="r:*")  # noqa: SIM115
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise Invalid(field, f"not a readable zip or tar archive: {exc}") from exc
    with archive:
        try:
            members = archive.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise Invalid(field, f"truncated or corrupt tar archive: {exc}") from exc
        files = [m for m in members if not m.isdir()]
        _check_members(len(files), sum(m.size for m in files), field)
        for member in files:
            name = _member_name(member.name, field)
            if name is None:
                continue
            if not member.isreg() or stat.S_ISLNK(member.mode):
                raise Invalid(f"{field}.{name}", "links and special files are not accepted in archives")
            handle = archive.extractfile(member)
            if handle is None:
                raise Invalid(f"{field}.{name}", "cannot read this archive member")
            yield ImageFile(name, handle.read())


def _check_members(count: int, expanded: int, field: str) -> None:
    if count > MAX_ARCHIVE_MEMBERS:
        raise Invalid(field, f"{count} files in the archive; at most {MAX_ARCHIVE_MEMBERS}")
    if expanded > MAX_ARCHIVE_BYTES:
        raise Invalid(field, f"the archive expands to {expanded} bytes; at most {MAX_ARCHIVE_BYTES}")


def _member_name(name: str, field: str) -> str | None:
    """The member's path as an item name; None for one to skip; 422 for one that escapes."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and path.parts[0].endswith(":")):
        raise Invalid(field, f"archive member {name!r} has a path outside the archive")
    if any(part.startswith(".") or part in IGNORED_PARTS for part in path.parts):
        return None
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise Invalid(f"{field}.{name}", f"not an image file name; expected {', '.join(IMAGE_SUFFIXES)}")
    return str(path)


# ------------------------------------------------------------------------------------------------ shared


def require_kind(project: Project, kind: str) -> None:
    """422 on ``data_kind`` unless the project holds ``kind`` items (texts: text, files: image)."""
    if project.data_kind != kind:
        what = {"text": "texts", "image": "image files"}[kind]
        raise Invalid("data_kind", f"this project holds {project.data_kind}; {what} go to {kind} projects")


def _check_id(ext: str, field: str) -> None:
    if not isinstance(ext, str) or not 1 <= len(ext) <= MAX_EXTERNAL_ID or "\x00" in ext:
        raise Invalid(field, f"external ids must have 1..{MAX_EXTERNAL_ID} characters, no NUL")
    try:
        ext.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise Invalid(field, "external ids must be valid Unicode") from exc


__all__ = [
    "FORMATS",
    "MAX_FILE_BYTES",
    "ImageFile",
    "archive_images",
    "check_encoder_allowed",
    "check_project_settings",
    "check_settings_change",
    "encode_texts",
    "fetch_images",
    "image_encoder",
    "ingest_images",
    "ingest_text_file",
    "ingest_texts",
    "is_archive",
    "predict_items_of_images",
    "require_image_files",
    "require_kind",
    "round_record",
    "takes_image_files",
    "text_encoder",
]
