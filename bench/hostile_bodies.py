"""Peak memory of the API for the worst request bodies (issue 15): each body goes to a fresh ``tbal serve``
(SQLite, the default limits unless told); the server's peak resident memory (``VmHWM`` of
/proc/<pid>/status, which also counts the file-backed pages of a memory-mapped upload) is read after the
answer, and its anonymous memory (``RssAnon``, sampled every 20 ms: what the request allocated).

Usage:

    .venv/bin/python bench/hostile_bodies.py --json bench/results/hostile_bodies.json

The bodies (built chunk by chunk on disk, never whole in this process's memory):

- ``bomb-wrong-width``: a .npz whose compressed X (3 GiB of zeros, shape (n, 5) for a project of width 4)
  is a 3 MB body: refused from its header;
- ``bomb-right-width``: the same zeros as X of shape (n, 4): more than ``TBAL_MAX_INFLATED_BYTES``, refused
  before it is inflated;
- ``inflate-to-limit``: a compressed X of the right width that inflates to just under the limit (the
  worst accepted compressed body: it is inflated, checked and stored);
- ``npy-2gib``: a raw .npy of 2 GiB - 1 KiB (just under ``TBAL_MAX_REQUEST_BYTES``): streamed to a file
  and memory-mapped;
- ``json-64mib``: a JSON item whose ``features`` list fills the 64 MiB JSON limit with zeros (parsed in
  memory by the framework before any check);
- ``json-64mib-items``: 64 MiB of small valid JSON items (the most Python objects per byte);
- ``text-200mib``: 200 MiB of ``text/plain``: 413 once 64 MiB have arrived.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
GIB = 1024**3
MIB = 1024**2


def npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    text += " " * (-(12 + len(text) + 1) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode()


def zeros(n: int) -> Iterator[bytes]:
    chunk = bytes(MIB)
    for start in range(0, n, MIB):
        yield chunk[: min(MIB, n - start)]


def compressed_npz(path: Path, shape: tuple[int, ...], n_bytes: int) -> None:
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("X.npy", "w", force_zip64=True) as member,
    ):
        member.write(npy_header(shape))
        for chunk in zeros(n_bytes):
            member.write(chunk)


def raw_npy(path: Path, shape: tuple[int, ...], n_bytes: int) -> None:
    with path.open("wb") as f:
        f.write(npy_header(shape))
        for chunk in zeros(n_bytes):
            f.write(chunk)


def json_body(path: Path, size: int) -> None:
    head, tail = b'{"items": [{"external_id": "j", "features": [', b"0]}]}"
    with path.open("wb") as f:
        f.write(head)
        n = (size - len(head) - len(tail)) // 2
        pattern = b"0," * (MIB // 2)
        for start in range(0, n, len(pattern) // 2):
            f.write(pattern[: 2 * min(len(pattern) // 2, n - start)])
        f.write(tail)


def json_items_body(path: Path, size: int) -> None:
    """Many small valid items (features of width 4) up to ``size`` bytes: the most Python objects."""
    with path.open("wb") as f:
        f.write(b'{"items": [')
        written, i = 11, 0
        while written < size - 64:
            item = b'%s{"external_id": "i%d", "features": [0, 0, 0, 0]}' % (b"," if i else b"", i)
            f.write(item)
            written += len(item)
            i += 1
        f.write(b"]}")


def vm_hwm(pid: int) -> int:
    """Peak resident memory of ``pid`` in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def rss_anon(pid: int) -> int:
    """Anonymous resident memory of ``pid`` now (RSS without the file-backed pages of memory maps)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


class AnonPeak:
    """Samples :func:`rss_anon` every 20 ms in a thread: ``first`` and ``peak``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.first = self.peak = rss_anon(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_anon(self.pid))

    def __enter__(self) -> AnonPeak:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        time.sleep(0.1)
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_anon(self.pid))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``tbal serve`` on a fresh SQLite file, with an admin key and a feature project of ``width``."""

    def __init__(self, workdir: Path, env_extra: dict[str, str], width: int) -> None:
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TBAL_")}
        self.env.update(
            TBAL_DATABASE_URL=f"sqlite:///{workdir / 'tbal.sqlite'}",
            TBAL_ARTIFACTS_DIR=str(workdir / "artifacts"),
            TBAL_UPLOAD_DIR=str(workdir / "uploads"),
            **env_extra,
        )
        tbal = [sys.executable, "-m", "tbal.cli"]
        self.log = (workdir / "server.log").open("wb")
        self.process = subprocess.Popen(
            [*tbal, "serve", "--port", str(self.port), "--log-level", "warning"],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("tbal serve did not start")
            time.sleep(0.2)
        key = subprocess.run(
            [*tbal, "create-key", "--name", "bench"], env=self.env, capture_output=True, text=True, check=True
        ).stdout.strip()
        self.headers = {"Authorization": f"Bearer {key}"}
        project = {"name": "hostile", "classes": ["a", "b"], "data_kind": "features", "input_shape": [width]}
        created = httpx.post(f"{self.url}/api/v1/projects", json=project, headers=self.headers, timeout=30)
        self.pid = int(created.json()["id"])

    def post(self, path: Path, content_type: str, url: str | None = None) -> tuple[int, str, float]:
        target = url or f"{self.url}/api/v1/projects/{self.pid}/items/upload"

        def stream() -> Iterator[bytes]:
            with path.open("rb") as f:
                while chunk := f.read(MIB):
                    yield chunk

        started = time.perf_counter()
        try:
            response = httpx.post(
                target,
                content=stream(),
                headers={
                    **self.headers,
                    "Content-Type": content_type,
                    "Content-Length": str(path.stat().st_size),
                },
                timeout=600,
            )
            status, text = response.status_code, response.text[:200]
        except httpx.HTTPError as exc:  # the server may answer 413 and close while we still send
            status, text = -1, f"{type(exc).__name__}: {exc}"
        return status, text, time.perf_counter() - started

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        self.log.close()


WIDE = 16_384
"""Width of the items of the cases that are accepted (64 KiB rows: a GiB is 16k items, not 67M)."""
OCTET = "application/octet-stream"


def _wide_rows(n_bytes: int) -> tuple[int, int]:
    return (n_bytes - 4096) // (4 * WIDE), WIDE


def _wide_bytes(n_bytes: int) -> int:
    return _wide_rows(n_bytes)[0] * 4 * WIDE


CASES: dict[str, tuple[Callable[[Path, int], None], str, str, int]] = {
    # name: (build(path, inflated limit), content type, route, the project's width)
    "bomb-wrong-width": (lambda p, _l: compressed_npz(p, (3 * GIB // 20, 5), 3 * GIB), OCTET, "upload", 4),
    "bomb-right-width": (lambda p, _l: compressed_npz(p, (3 * GIB // 16, 4), 3 * GIB), OCTET, "upload", 4),
    "inflate-to-limit": (
        lambda p, lim: compressed_npz(p, _wide_rows(lim), _wide_bytes(lim)),
        OCTET,
        "upload",
        WIDE,
    ),
    "npy-2gib": (lambda p, _l: raw_npy(p, _wide_rows(2 * GIB), _wide_bytes(2 * GIB)), OCTET, "upload", WIDE),
    "json-64mib": (lambda p, _l: json_body(p, 64 * MIB - 1024), "application/json", "items", 4),
    "json-64mib-items": (lambda p, _l: json_items_body(p, 64 * MIB - 1024), "application/json", "items", 4),
    "text-200mib": (lambda p, _l: raw_npy(p, (1,), 200 * MIB), "text/plain", "items", 4),
}


def run_case(name: str, tmp: Path, limit: int, env_extra: dict[str, str]) -> dict[str, Any]:
    build, content_type, route, width = CASES[name]
    body = tmp / f"{name}.bin"
    build(body, limit)
    workdir = tmp / name
    workdir.mkdir()
    server = Server(workdir, env_extra, width)
    try:
        baseline = vm_hwm(server.process.pid)
        url = None if route == "upload" else f"{server.url}/api/v1/projects/{server.pid}/items"
        with AnonPeak(server.process.pid) as anon:
            status, text, seconds = server.post(body, content_type, url)
        peak = vm_hwm(server.process.pid)
    finally:
        server.stop()
    result = {
        "case": name,
        "body_bytes": body.stat().st_size,
        "status": status,
        "answer": text,
        "seconds": round(seconds, 2),
        "rss_before_mib": round(baseline / MIB, 1),
        "rss_peak_mib": round(peak / MIB, 1),
        "rss_added_mib": round((peak - baseline) / MIB, 1),
        "anon_before_mib": round(anon.first / MIB, 1),
        "anon_peak_mib": round(anon.peak / MIB, 1),
    }
    body.unlink()
    print(json.dumps(result), flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated, from: " + ", ".join(CASES))
    parser.add_argument("--max-inflated-bytes", type=int, default=GIB, help="TBAL_MAX_INFLATED_BYTES")
    parser.add_argument("--tmp", type=Path, default=None, help="folder for the bodies (several GiB free)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    env_extra = {"TBAL_MAX_INFLATED_BYTES": str(args.max_inflated_bytes)}
    results = []
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for name in args.cases.split(","):
            results.append(run_case(name, Path(tmp), args.max_inflated_bytes, env_extra))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "machine": platform.node(),
            "cpus": os.cpu_count(),
            "max_inflated_bytes": args.max_inflated_bytes,
            "results": results,
        }
        args.json.write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
