"""Functions the ingest pool's worker processes run in tests/app/items/test_ingest_processes.py (a module
of its own: a worker imports it by name, and this one imports nothing heavy)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tbal.encoders import EncoderConfig, TextEncoder


def pid_of(items: Sequence[int]) -> list[int]:
    """The worker's process id for each item."""
    return [os.getpid()] * len(items)


def dies_once(items: Sequence[int], marker: str) -> list[int]:
    """Kills its worker the first time any worker runs it (``marker`` not there yet), then doubles."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return [2 * i for i in items]
    os.close(fd)
    os._exit(1)


def always_dies(items: Sequence[int]) -> list[int]:
    os._exit(1)


def refuses(items: Sequence[int]) -> list[int]:
    raise ValueError(f"refused {len(items)} items")


def marker_in(folder: Path) -> str:
    return str(folder / "died-once")


class Picky(TextEncoder):
    """Refuses any batch holding a text with "bad" in it (as a model encoder may refuse one text)."""

    def __init__(self) -> None:
        super().__init__(EncoderConfig("minilm"))

    @property
    def dim(self) -> int:
        return 4

    def _encode(self, batch: list[str]) -> np.ndarray:
        if any("bad" in t for t in batch):
            raise ValueError("cannot encode a bad text")
        return np.full((len(batch), 4), 0.5, dtype=np.float32)
