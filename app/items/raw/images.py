"""Image files into image projects (pixels stored as uint8) and feature projects of an image backbone
(its features stored): decoded by Pillow to the project's shape (:func:`tbal.encoders.images.decode_image`).

:func:`ingest_images` is the synchronous way (every file decoded before anything is written; a bad one is
a 422 naming it, nothing stored). Background jobs (:mod:`app.items.jobs_run`) use the same pieces item by
item: :func:`image_target`, :func:`decode_files` (on the jobs' worker processes: :mod:`app.items.processes`),
:func:`image_truth` and :func:`store_images`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.db.models import Project
from app.errors import Invalid
from app.items import repository as items_repo
from app.items.arrays import layout_of
from app.items.fetch import fetch_bytes
from app.items.processes import decode_rows, joined, map_slices, slices
from app.items.raw.archives import ImageFile
from app.items.raw.checks import check_id, upload_result
from app.items.raw.encoders import image_encoder, require_image_files
from app.items.schemas import IngestResult
from app.items.service import _check_unique, _store
from app.projects.classes import class_index
from tbal.encoders.backbone import ImageBackboneEncoder

MAX_PREDICT_FILES = 1_000
DECODE_THREADS = max(1, min(4, os.cpu_count() or 1))
"""Threads that decode one batch of image files whose files are large enough (Pillow releases the GIL
while it decodes)."""
THREADED_FILE_BYTES = 4_096
"""Files of fewer bytes on average are decoded on one thread: a small file's decode is mostly Python
(opening, mode, array) that holds the GIL, and threads that take it in turn were slower than one
(10,000 PNGs 32×32 of 2.3 KB through an ingest job: 1.5-1.7 s on two threads, 1.2-1.3 s on one; 5,000
JPEGs 256×256 of 8.3 KB: 2.3-2.5 s on two, 3.5 s on one)."""

Label = str | int | None


def ingest_images(
    session: Session,
    project: Project,
    files: Sequence[ImageFile],
    *,
    id_prefix: str = "",
    labels_from_folders: bool = False,
    labels: Sequence[Label] | None = None,
    chunk_rows: int = 5_000,
    end_reads: bool = False,
) -> IngestResult:
    """Decode image files to the project's ``input_shape`` and store them as uint8 items with ids
    ``<id_prefix><name>``; with ``labels_from_folders`` each file's parent folder names its class (the
    image-folder layout ``cat/001.png``), or ``labels`` gives each file's class (None: unknown).
    Every file is decoded before anything is written: a bad one is a 422 naming it (``files.<name>``)
    and nothing is stored. ``end_reads``: commit the session's reads before decoding (a caller with
    nothing of its own pending)."""
    require_image_files(project)
    ids = image_ids(files, id_prefix)
    for ext, f in zip(ids, files, strict=True):
        check_id(ext, f"files.{f.name}")
    file_labels = image_labels(files, labels, labels_from_folders)
    backbone, shape = image_target(project)
    known = items_repo.ids_by_external(session, project.id, ids)
    new = [i for i, ext in enumerate(ids) if ext not in known]
    if end_reads:
        session.commit()  # no transaction open while decoding (SQLite: BEGIN IMMEDIATE blocks the others)
    pixels, problems = decode_files([files[i].data for i in new], shape)
    for row, problem in enumerate(problems):
        if problem is not None:
            raise Invalid(f"files.{files[new[row]].name}", problem)
    truth = np.array([image_truth(project, files[i].name, file_labels[i]) for i in new], dtype=np.int64)
    stored = store_images(session, project, backbone, pixels, [ids[i] for i in new], truth, chunk_rows)
    return upload_result(len(files), stored)


def image_ids(files: Sequence[ImageFile], id_prefix: str) -> list[str]:
    """The items' external ids, ``<id_prefix><name>``; a 422 when there are no files or two share one."""
    if not files:
        raise Invalid("files", "no image files in the request")
    ids = [f"{id_prefix}{f.name}" for f in files]
    _check_unique(ids, "files", per_item=False)
    return ids


def image_labels(
    files: Sequence[ImageFile], labels: Sequence[Label] | None, labels_from_folders: bool
) -> list[Label]:
    """Each file's ground truth as given: ``labels``, else (``labels_from_folders``) its folder's name
    (a 422 naming a file in no folder), else None."""
    if labels is not None:
        return list(labels)
    if not labels_from_folders:
        return [None] * len(files)
    found: list[Label] = []
    for f in files:
        folder = PurePosixPath(f.name).parent.name
        if not folder:
            raise Invalid(f"files.{f.name}", "labels_from_folders: the file is in no folder")
        found.append(folder)
    return found


def image_truth(project: Project, name: str, label: Label) -> int:
    """The class index of ``label`` (-1 for None); a 422 on ``files.<name>`` for an unknown class."""
    if label is None:
        return -1
    return class_index(project.classes, label, f"files.{name}.ground_truth")


def image_target(project: Project) -> tuple[ImageBackboneEncoder | None, tuple[int, ...]]:
    """(the project's backbone or None, the shape images are decoded to)."""
    require_image_files(project)
    backbone = image_encoder(project.settings) if project.data_kind == "features" else None
    shape = backbone.image_shape if backbone is not None else layout_of(project).shape
    return backbone, tuple(shape)


def store_images(
    session: Session,
    project: Project,
    backbone: ImageBackboneEncoder | None,
    pixels: np.ndarray,
    ids: list[str],
    truth: np.ndarray,
    chunk_rows: int,
) -> IngestResult:
    """Write decoded images (or their backbone's features) as new items with their ground truth, in the
    session's transaction, and commit."""
    stored = backbone.encode(pixels) if backbone is not None else pixels
    return _store(session, project, layout_of(project), stored, ids, truth, chunk_rows)


def decode_files(
    data: Sequence[bytes], shape: tuple[int, ...], processes: int = 0
) -> tuple[np.ndarray, list[str | None]]:
    """Decode image files into (n, *shape) uint8, with each file's problem (None: decoded; its row is then
    filled). On the ingest jobs' worker processes when ``processes`` (``TBAL_INGEST_PROCESSES``: see
    :mod:`app.items.processes`) is 2 or more and their pool runs; else on :data:`DECODE_THREADS` threads
    (one for small files: :data:`THREADED_FILE_BYTES`). The same arrays and problems either way."""
    if not data:
        return decode_rows(data, shape)
    if processes >= 2:
        parts = map_slices(processes, decode_rows, data, shape)
        if parts is not None:
            return joined(parts)
    threads = DECODE_THREADS if sum(map(len, data)) >= THREADED_FILE_BYTES * len(data) else 1
    if threads == 1 or len(data) < 2 * threads:  # on the caller's thread
        return decode_rows(data, shape)

    def rows(part: slice) -> tuple[np.ndarray, list[str | None]]:
        return decode_rows(data[part], shape)

    # one contiguous slice a thread: a future per file costs as much as decoding a small PNG
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return joined(list(pool.map(rows, slices(len(data), threads))))


def fetch_images(
    urls: Sequence[str], names: Sequence[str], *, max_bytes: int, timeout_s: float, allow_private: bool
) -> list[ImageFile]:
    """Fetch image files by URL (public addresses only unless ``allow_private``; see
    :mod:`app.items.fetch`), each named by ``names`` (422 on ``urls.<i>`` for one that fails)."""
    return [
        ImageFile(name, fetch_bytes(url, f"urls.{i}", max_bytes=max_bytes, timeout_s=timeout_s,
                                    allow_private=allow_private))
        for i, (url, name) in enumerate(zip(urls, names, strict=True))
    ]  # fmt: skip


def predict_items_of_images(project: Project, files: Sequence[ImageFile]) -> list[dict[str, Any]]:
    """Image files -> the ``/predict`` payload of each: ``{"image": pixels}`` for an image project,
    ``{"features": backbone output}`` for a feature project of a backbone; 422 naming a bad file."""
    backbone, shape = image_target(project)
    pixels, problems = decode_files([f.data for f in files], shape)
    for row, problem in enumerate(problems):
        if problem is not None:
            raise Invalid(f"files.{files[row].name}", problem)
    if backbone is None:
        return [{"image": x.tolist()} for x in pixels]
    return [{"features": row} for row in backbone.encode(pixels).tolist()]
