"""Loading .npz data sets, preparing inputs for the classifiers, seeded splits.

CONTRACT (stub, to be implemented): keep these names and signatures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from tbal.errors import DataError

__all__ = ["DataError", "Dataset", "load_dataset", "prepare_inputs", "make_dataset"]


@dataclass(frozen=True)
class Dataset:
    """A data set ready for the loop.

    X: prepared inputs, float32: images as (n, C, H, W) scaled to [0, 1]; feature vectors as (n, d).
    y: (n,) int64 ground-truth labels in [0, K) (used only to simulate humans and to measure true error).
    soft: (n, K) float32 human label distributions (rows sum to 1) or None.
    counts: (n, K) int vote counts or None.
    kind: "image" or "features"; input_shape: X.shape[1:]; class_names: K names.
    """

    X: np.ndarray
    y: np.ndarray
    kind: Literal["image", "features"]
    class_names: tuple[str, ...]
    soft: np.ndarray | None = None
    counts: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.X.shape[1:])

    def __len__(self) -> int:
        return int(self.X.shape[0])


def prepare_inputs(X: np.ndarray) -> tuple[np.ndarray, Literal["image", "features"]]:
    """uint8 (n,H,W) / (n,H,W,C) images -> float32 (n,C,H,W) in [0,1]; float (n,d) -> float32 (n,d)."""
    raise NotImplementedError


def make_dataset(
    X: np.ndarray,
    y: np.ndarray,
    *,
    soft: np.ndarray | None = None,
    counts: np.ndarray | None = None,
    class_names: tuple[str, ...] | None = None,
) -> Dataset:
    """Validate raw arrays (NaN/inf, label range, shapes, soft rows summing to 1) and prepare them."""
    raise NotImplementedError


def load_dataset(path: str | Path, *, split: str = "auto") -> Dataset:
    """Load a .npz file: keys X/y, or X_train/y_train (split "train"), X_dev/y_dev, ...;
    optional soft, counts, class_names. Raises DataError naming what is wrong."""
    raise NotImplementedError
