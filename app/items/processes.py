"""A small pool of worker processes for the CPU-bound step of ingest jobs: decoding image files, and
encoding texts with an encoder that needs no model (``hashing``).

Why processes: Pillow's decode of a small file and the hashing encoder are mostly Python and hold the
GIL, and so does storing what they produce; on one process the job's writer and its encoder take the GIL
in turn (BENCHMARKS.md, "Raw uploads through ingest jobs"). In worker processes the job's own thread
only reads, checks and writes. Model encoders (MiniLM, a backbone) stay on the job's thread: torch
releases the GIL, and every process would need the model.

- Size: ``TBAL_INGEST_PROCESSES`` (None: ``min(CPUs, 4)``); 0 or 1: no pool, the job's own encoding
  thread does the work, as before.
- Start: once per process that runs jobs (the API process on the embedded default, each Celery prefork
  child that runs one), on first use, then kept warm. The start method is ``forkserver``: a fork of a
  process with threads (the API's, a Celery child's) can inherit a lock held by another thread, while
  the fork server is a fresh interpreter that imports :data:`PRELOAD` once and forks the workers from
  there (~0.1 s for two workers after that). ``spawn`` where there is no fork server.
- A pool that cannot start is logged once, and :func:`map_slices` returns None: the caller does the
  work on its thread. A worker that dies in the middle of a batch (killed, or a file that crashes the
  decoder) breaks the pool: it is dropped and the batch is run once more on a new pool; a second death
  raises :class:`WorkerDied` (the job fails with that reason; on the caller's thread such a file would
  take the whole service down).
- Like every ``forkserver`` / ``spawn`` worker, each one imports the main module of the process (as
  ``__mp_main__``): the service's commands (``tbal serve``, ``tbal worker``, ``uvicorn``, ``celery``)
  guard theirs, and a script that starts the service itself needs ``if __name__ == "__main__":``.
- Stop: at exit (``atexit``; a Celery child on ``worker_process_shutdown``); when the process that owns
  the pool is killed, its workers see it and exit (then the fork server does).

The workers import this module to run its functions, so it imports numpy, Pillow (through
:mod:`tbal.encoders.images`) and the library's encoders only, nothing of the web or database layers (the
``app.items.raw`` package would pull them in).
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import lru_cache
from typing import Any, TypeVar

import numpy as np

from tbal.encoders import EncoderConfig, TextEncoder, make_text_encoder
from tbal.encoders.images import ImageError, decode_image
from tbal.errors import DataError

logger = logging.getLogger(__name__)

T = TypeVar("T")

MAX_DEFAULT_PROCESSES = 4
START_TIMEOUT_S = 60.0
"""Longest wait for a new pool's workers to answer (then: no pool, logged)."""
PRELOAD = (
    "numpy",
    "PIL.Image",
    "PIL.PngImagePlugin",
    "PIL.JpegImagePlugin",
    "PIL.WebPImagePlugin",
    "PIL.BmpImagePlugin",
    "sklearn.feature_extraction.text",
    "app.items.processes",
)
"""What the fork server imports once, so that its workers start with it (scikit-learn alone takes ~1 s)."""
MIN_SLICE = 32
"""Fewest items a worker gets from one batch (a task's round trip costs ~0.2 ms)."""
PROCESS_ENCODERS = frozenset({"hashing"})
"""Text encoders that run in the pool: cheap, CPU only, no model to load in every worker."""


class WorkerDied(RuntimeError):
    """A worker process died twice while running one batch."""


def pool_size(setting: int | None) -> int:
    """Worker processes for ``TBAL_INGEST_PROCESSES`` (None: ``min(CPUs, 4)``); 0 or 1 means no pool."""
    if setting is not None:
        return setting
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(cpus, MAX_DEFAULT_PROCESSES)


def in_processes(config: EncoderConfig) -> bool:
    """Whether texts of this encoder are encoded in the pool (:data:`PROCESS_ENCODERS`)."""
    return config.name in PROCESS_ENCODERS


def slices(n: int, parts: int, min_items: int = 1) -> list[slice]:
    """``range(n)`` in at most ``parts`` contiguous slices whose sizes differ by one at most, each of at
    least ``min_items`` items (one slice when ``n`` is smaller); none when ``n`` is 0."""
    if n == 0:
        return []
    count = max(1, min(parts, n // max(min_items, 1)))
    size, longer = divmod(n, count)
    bounds = [i * size + min(i, longer) for i in range(count + 1)]
    return [slice(bounds[i], bounds[i + 1]) for i in range(count)]


class _Pool:
    """One started pool: its executor and size."""

    def __init__(self, executor: ProcessPoolExecutor, workers: int) -> None:
        self.executor = executor
        self.workers = workers


_lock = threading.Lock()
_pools: dict[int, _Pool] = {}  # by size: one in a service; a size changed (tests) leaves the other alone
_refused: set[int] = set()  # sizes whose pool could not start in this process (logged once)


def map_slices(
    size: int, fn: Callable[..., T], items: Sequence[Any], *args: Any, min_items: int = MIN_SLICE
) -> list[T] | None:
    """``fn(part, *args)`` for contiguous parts of ``items``, one a worker (each of ``min_items`` or
    more), in the pool of ``size`` workers (started on first use); the results in order. None when
    ``size`` < 2 or the pool cannot start: the caller then does the work on its own thread. An exception
    of ``fn`` is raised here; :class:`WorkerDied` after a worker died in two tries."""
    for attempt in (1, 2):
        pool = get_pool(size)
        if pool is None:
            return None
        calls = [items[part] for part in slices(len(items), pool.workers, min_items)]
        try:
            futures: list[Future[T]] = [pool.executor.submit(fn, part, *args) for part in calls]
            return [future.result() for future in futures]
        except BrokenProcessPool as exc:
            _drop(pool)
            logger.warning("ingest processes: a worker died on a batch (attempt %d): %s", attempt, exc)
            if attempt == 2:
                raise WorkerDied(f"a worker process died twice on this batch: {exc}") from exc
    raise AssertionError("unreachable")


def joined(parts: Sequence[tuple[np.ndarray, list[str | None]]]) -> tuple[np.ndarray, list[str | None]]:
    """The results of :func:`decode_rows` or :func:`encode_rows` on consecutive parts, as one."""
    return np.concatenate([rows for rows, _ in parts]), [p for _, problems in parts for p in problems]


def get_pool(size: int) -> _Pool | None:
    """The process's pool of ``size`` workers, started (every worker answered) on first use; None when
    ``size`` < 2 or it cannot start."""
    if size < 2:
        return None
    with _lock:
        if size in _pools:
            return _pools[size]
        if size in _refused:
            return None
        try:
            _pools[size] = _Pool(_start(size), size)
        except Exception as exc:
            _refused.add(size)
            logger.warning(
                "ingest processes: could not start %d worker processes (%s: %s); decoding and encoding "
                "on the job's thread instead",
                size,
                type(exc).__name__,
                exc,
            )
            return None
        return _pools[size]


def _start(size: int) -> ProcessPoolExecutor:
    methods = multiprocessing.get_all_start_methods()
    method = "forkserver" if "forkserver" in methods else "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(list(PRELOAD))
    executor = ProcessPoolExecutor(size, mp_context=context, initializer=_worker_started)
    try:
        # each submit finds no idle worker and starts one: all of them answer before the first batch
        for future in [executor.submit(os.getpid) for _ in range(size)]:
            future.result(timeout=START_TIMEOUT_S)
    except BaseException:
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    logger.info("ingest processes: %d workers started (%s)", size, method)
    return executor


def _drop(pool: _Pool) -> None:
    """Forget a broken pool (the next :func:`get_pool` starts a new one)."""
    with _lock:
        if _pools.get(pool.workers) is pool:
            del _pools[pool.workers]
    pool.executor.shutdown(wait=False, cancel_futures=True)


def shutdown() -> None:
    """Stop the process's pools, if any (at exit; tests), and forget the sizes that could not start."""
    with _lock:
        pools = list(_pools.values())
        _pools.clear()
        _refused.clear()
    for pool in pools:
        pool.executor.shutdown(wait=True, cancel_futures=True)


atexit.register(shutdown)


def _worker_started() -> None:
    """In each worker: exit as soon as the process that owns the pool is gone, even when it was killed
    and could not stop the pool (a worker waits for its next task otherwise, for ever; and while it
    lives, so does the fork server, which exits when its last client's pipe closes)."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), name="parent-watch", daemon=True).start()


def _exit_with(sentinel: int) -> None:
    # the sentinel is a pipe whose writing end only the owner holds: readable (closed) when it is gone
    multiprocessing.connection.wait([sentinel])
    os._exit(0)


# What the workers run (also called on the job's thread when there is no pool).


def decode_rows(data: Sequence[bytes], shape: tuple[int, ...]) -> tuple[np.ndarray, list[str | None]]:
    """Decode image files into (n, *shape) uint8, one after another; with each file's problem (None:
    decoded; else its row stays zero)."""
    out = np.zeros((len(data), *shape), dtype=np.uint8)
    problems: list[str | None] = [None] * len(data)
    for row, item in enumerate(data):
        try:
            out[row] = decode_image(item, shape)
        except ImageError as exc:
            problems[row] = str(exc)
    return out, problems


class FeatureSizeError(Exception):
    """The encoder gives features of another size than the project stores (the job fails)."""


def encode_rows(
    texts: Sequence[str], encoder: TextEncoder | EncoderConfig, shape: tuple[int, ...]
) -> tuple[np.ndarray, list[str | None]]:
    """Checked texts -> (features of those the encoder takes, each text's problem: None when encoded).
    All at once; when the encoder refuses the batch, one by one, so that only the texts it refuses get a
    problem. ``encoder``: the encoder, or its config (in a worker: built once per process). Raises
    :class:`FeatureSizeError` when its features are not of ``shape``."""
    if isinstance(encoder, EncoderConfig):
        encoder = _encoder(encoder)
    try:
        return features(encoder, shape, list(texts)), [None] * len(texts)
    except (DataError, ValueError):
        pass
    parts: list[np.ndarray] = []
    problems: list[str | None] = []
    for text in texts:
        try:
            parts.append(features(encoder, shape, [text]))
            problems.append(None)
        except (DataError, ValueError) as exc:
            problems.append(str(exc))
    return (np.concatenate(parts) if parts else np.empty((0, *shape), dtype=np.float32)), problems


def features(encoder: TextEncoder, shape: tuple[int, ...], texts: list[str]) -> np.ndarray:
    """(n, *shape) features of ``texts``; :class:`FeatureSizeError` when the encoder gives another size."""
    X = encoder.encode(texts)
    if X.shape[1:] != shape:
        raise FeatureSizeError(f"encoder gives {X.shape[1:]} features, project stores {shape}")
    return X


@lru_cache(maxsize=4)
def _encoder(config: EncoderConfig) -> TextEncoder:
    return make_text_encoder(config)
