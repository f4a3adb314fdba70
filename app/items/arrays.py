"""How a project's items are stored as bytes, and checking arrays before they are stored.

Features are stored as little-endian float32 (d values, 4·d bytes), images as uint8 (H·W[·C] bytes) in
the layout they were uploaded in; :func:`tbal.data.prepare_inputs` turns loaded arrays into model inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.db.models import Project
from app.errors import Invalid

CHECK_CHUNK_BYTES = 16 * 1024**2
"""Bytes of values checked at a time (rows per chunk = this / the row's size: wide items, few rows)."""


@dataclass(frozen=True)
class Layout:
    """The stored form of one item: its shape and dtype."""

    kind: str  # "features" | "image"
    shape: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype("<f4") if self.kind == "features" else np.dtype(np.uint8)

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    @property
    def payload(self) -> str:
        """The JSON field that carries an item's data."""
        return "features" if self.kind == "features" else "image"


def layout_of(project: Project) -> Layout:
    # A text project stores its encoder's features (app.items.raw): the layout of a feature project.
    kind = "features" if project.data_kind == "text" else project.data_kind
    return Layout(kind, tuple(int(s) for s in project.input_shape))


def check_shape(layout: Layout, shape: tuple[int, ...], dtype: np.dtype[Any], field: str) -> None:
    """Check the shape and dtype of an (n, *shape) array from its header alone, before its data are
    read (a compressed upload of the wrong width is refused before it is inflated). Raises
    :class:`Invalid`."""
    if len(shape) != 1 + len(layout.shape) or tuple(shape[1:]) != layout.shape:
        what = "feature vectors" if layout.kind == "features" else "images"
        raise Invalid(
            field, f"expected {what} of shape (n, {', '.join(map(str, layout.shape))}), got {tuple(shape)}"
        )
    if layout.kind == "features":
        if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
            raise Invalid(field, f"expected a float array, got dtype {dtype}")
    elif not np.issubdtype(dtype, np.integer):
        raise Invalid(field, f"expected uint8 images (values 0..255), got dtype {dtype}")


def rows_per_chunk(layout: Layout, chunk_bytes: int, most: int | None = None) -> int:
    """Rows of ``layout`` in about ``chunk_bytes`` (at least one; at most ``most``)."""
    rows = max(1, chunk_bytes // max(1, layout.row_bytes))
    return rows if most is None else min(most, rows)


def check_array(layout: Layout, X: np.ndarray, field: str) -> None:
    """Check an (n, *shape) array before storing it: shape, dtype, finite values / 0..255 pixels.

    Works chunk by chunk (``X`` may be a memory map of an uploaded file). Raises :class:`Invalid`.
    """
    check_shape(layout, tuple(X.shape), X.dtype, field)
    step = rows_per_chunk(layout, CHECK_CHUNK_BYTES)
    if layout.kind == "features":
        for start in range(0, X.shape[0], step):
            with np.errstate(over="ignore"):
                part = np.asarray(X[start : start + step], dtype=np.float32)
            bad = ~np.isfinite(part)
            if bad.any():
                row = start + int(np.argwhere(bad)[0][0])
                raise Invalid(field, f"row {row} has NaN or infinite values (or values beyond float32)")
        return
    if X.dtype == np.uint8:
        return
    for start in range(0, X.shape[0], step):
        part = X[start : start + step]
        if part.size and (part.min() < 0 or part.max() > 255):
            raise Invalid(field, "expected pixel values in 0..255")


def to_storage(layout: Layout, X: np.ndarray) -> np.ndarray:
    """``X`` (n, *shape) as the stored dtype, C-contiguous (one copy of the chunk at most)."""
    return np.ascontiguousarray(X, dtype=layout.dtype)


def json_payload(layout: Layout, value: Any, field: str) -> np.ndarray:
    """One item's JSON data (list of floats, or nested lists of pixels) as an array of ``layout.shape``."""
    if not isinstance(value, list) or len(value) != layout.shape[0]:
        # refused before it is converted: a huge list of the wrong length costs no array
        got = f"{len(value)} values" if isinstance(value, list) else type(value).__name__
        raise Invalid(field, f"expected shape {list(layout.shape)}, got {got} at the first level")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise Invalid(field, f"expected nested lists of numbers of shape {list(layout.shape)}") from exc
    if arr.shape != layout.shape:
        raise Invalid(field, f"expected shape {list(layout.shape)}, got {list(arr.shape)}")
    if not np.isfinite(arr).all():
        raise Invalid(field, "NaN or infinite values are not allowed")
    if layout.kind == "features":
        if arr.size and np.abs(arr).max() > np.finfo(np.float32).max:
            raise Invalid(field, "values beyond the float32 range")
        return arr.astype(np.float32)
    if (arr != np.round(arr)).any() or arr.min() < 0 or arr.max() > 255:
        raise Invalid(field, "expected integer pixel values in 0..255")
    return arr.astype(np.uint8)


def json_batch(layout: Layout, values: list[Any], field: str) -> np.ndarray:
    """Items' JSON payloads as one (n, *shape) array in the stored dtype."""
    out = np.empty((len(values), *layout.shape), dtype=layout.dtype)
    for i, value in enumerate(values):
        out[i] = json_payload(layout, value, f"{field}.{i}.{layout.payload}")
    return out


def from_bytes(layout: Layout, data: np.ndarray) -> np.ndarray:
    """(n, row_bytes) uint8 as stored -> (n, *shape) array of the stored dtype (a view, no copy)."""
    return data.view(layout.dtype).reshape(data.shape[0], *layout.shape)


FOUR_BIT_MAX = 16


def pixel_scale(layout: Layout, *arrays: np.ndarray, configured: float | None = None) -> float | None:
    """The divisor that maps a project's pixels to [0, 1], the same for every array of a round (and for
    predictions with its model): ``configured`` (the project's ``pixel_scale``) if set, else 16 when no
    pixel exceeds 16 (4-bit images such as scikit-learn's digits), else 255. None for features."""
    if layout.kind != "image":
        return None
    if configured:
        return float(configured)
    peak = max((int(a.max()) for a in arrays if a.size), default=255)
    return float(FOUR_BIT_MAX) if peak <= FOUR_BIT_MAX else 255.0


def model_inputs(layout: Layout, X: np.ndarray, scale: float | None) -> np.ndarray:
    """Stored arrays -> the classifier's inputs (float32; images (n, C, H, W) divided by ``scale``)."""
    from tbal.data import prepare_inputs

    if layout.kind == "features":
        prepared, _kind = prepare_inputs(X.astype(np.float32, copy=False))
    else:
        prepared, _kind = prepare_inputs(X, scale=scale)
    return prepared
