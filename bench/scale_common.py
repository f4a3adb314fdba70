"""Shared pieces of the scale benchmarks (issue 6): a throw-away PostgreSQL schema, synthetic feature
files, the plain-COPY baseline, process CPU time and peak memory read from /proc, and the JSON record.

Every benchmark measures its figure and, in the same run, the limit of the part underneath (a plain
COPY, a file read, a matrix product), so that the ratio means something on a shared, busy machine.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
RESULTS = Path(__file__).resolve().parent / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")


@contextmanager
def pg_schema(base_url: str, *, keep: bool = False) -> Iterator[str]:
    """A fresh schema built by the migrations; yields a URL whose search_path is that schema. Dropped
    afterwards (with everything in it) unless ``keep``."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from app.db.migrate import upgrade
    from app.settings import Settings

    schema = f"tbal_scale_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(base_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    url_text = url.render_as_string(hide_password=False)
    try:
        upgrade(Settings(database_url=url_text))
        yield url_text
    finally:
        if not keep:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL as a libpq connection string for psycopg (drops ``+psycopg``)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def write_features(path: Path, n: int, d: int, *, k: int = 10, seed: int = 0, chunk: int = 100_000) -> None:
    """An .npy of n × d float32 Gaussian blobs around k centres (written chunk by chunk, never whole in
    memory), and ``<path>.labels.npy`` with the (n,) int64 class of each row."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(k, d)).astype(np.float32)
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    y = np.empty(n, dtype=np.int64)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        labels = rng.integers(0, k, size=stop - start)
        X[start:stop] = centres[labels] + rng.normal(size=(stop - start, d)).astype(np.float32)
        y[start:stop] = labels
    X.flush()
    del X
    np.save(Path(f"{path}.labels.npy"), y)


def encoded_items_file(path: Path, npy: Path, project_id: int, prefix: str, *, chunk: int = 20_000) -> int:
    """The binary-COPY rows of ``items`` (project_id, data, role, created_at, external_id) for the rows
    of ``npy``, written to ``path`` with signature and trailer: the bytes a plain COPY sends. Returns
    its size in bytes."""
    from app.db.base import utcnow
    from app.db.bulk import COPY_SIGNATURE, COPY_TRAILER, encode_copy_rows, pg_timestamp

    X = np.load(npy, mmap_mode="r")
    ts = pg_timestamp(utcnow())
    with open(path, "wb") as out:
        out.write(COPY_SIGNATURE)
        for start in range(0, X.shape[0], chunk):
            block = np.ascontiguousarray(X[start : start + chunk], dtype="<f4")
            k = block.shape[0]
            out.write(
                encode_copy_rows(
                    k,
                    [
                        (">i8", project_id),
                        (f"V{block.shape[1] * 4}", block.view(np.uint8)),
                        ("S4", b"pool"),
                        (">i8", ts),
                    ],
                    tail=[f"{prefix}{i}".encode() for i in range(start, start + k)],
                )
            )
        out.write(COPY_TRAILER)
    return path.stat().st_size


def copy_file(conninfo: str, table: str, columns: tuple[str, ...], path: Path) -> dict[str, float]:
    """Plain binary COPY of a pre-encoded file into ``table`` in one transaction: the client only
    sends bytes. Returns wall seconds and the CPU seconds of the server backend that did it."""
    import psycopg

    with psycopg.connect(conninfo) as conn:
        backend = conn.info.backend_pid
        cpu0 = proc_cpu_s(backend)
        start = time.perf_counter()
        sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
        with conn.cursor() as cursor, cursor.copy(sql) as copy, open(path, "rb") as src:
            while block := src.read(1 << 22):
                copy.write(block)
        conn.commit()
        wall = time.perf_counter() - start
        cpu = proc_cpu_s(backend) - cpu0
    return {"wall_s": wall, "server_cpu_s": cpu}


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (from /proc; NaN when it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_mb(pid: int, key: str = "VmRSS") -> float:
    """VmRSS (now) or VmHWM (peak) of ``pid`` in MiB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


class RssSampler:
    """Samples a process's resident memory every ``interval`` seconds in a thread; ``peak_mb`` is the
    largest sample since the last :meth:`reset` (VmHWM cannot be reset, so it is sampled), and
    ``peak_anon_mb`` the largest anonymous part (without pages of memory-mapped files, which the
    kernel can drop at will)."""

    def __init__(self, pid: int | None = None, interval: float = 0.02) -> None:
        self.pid = pid or os.getpid()
        self.interval = interval
        self.peak_mb = 0.0
        self.peak_anon_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def reset(self) -> tuple[float, float]:
        """Start a new peak; returns the (resident, anonymous) MiB now."""
        self.peak_mb = proc_rss_mb(self.pid)
        self.peak_anon_mb = proc_rss_mb(self.pid, "RssAnon")
        return self.peak_mb, self.peak_anon_mb

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.peak_mb = max(self.peak_mb, proc_rss_mb(self.pid))
                self.peak_anon_mb = max(self.peak_anon_mb, proc_rss_mb(self.pid, "RssAnon"))
            except OSError:
                return


def conditions() -> dict[str, Any]:
    """What the machine was doing: load averages, cores, and this process's peak memory so far."""
    return {
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "self_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def save(name: str, record: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def scratch_dir(base: str | None) -> tempfile.TemporaryDirectory[str]:
    """A temporary folder for the large files (on the disk, not /dev/shm: they are gigabytes)."""
    return tempfile.TemporaryDirectory(prefix="tbal-scale-", dir=base)
