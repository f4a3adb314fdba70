"""Ingest N items of d float32 features through the API's binary upload (``tbal serve`` on PostgreSQL,
a real HTTP request streaming an .npy), beside a plain binary COPY of the same rows into the same table.

    .venv/bin/python bench/scale_ingest.py --n 1000000 --dim 384

Order: COPY baseline, API upload, COPY baseline again (the ratio uses their mean, so a load change
during the run shows as a gap between the two baselines). CPU seconds of the PostgreSQL backends and of
the API process are read from /proc: unlike wall time they hardly depend on what else runs. Everything
happens in a throw-away schema of the ``test`` database, dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.scale_common import (
    DEFAULT_PG,
    RssSampler,
    conditions,
    copy_file,
    encoded_items_file,
    libpq_url,
    pg_schema,
    proc_cpu_s,
    proc_rss_mb,
    save,
    scratch_dir,
    write_features,
)

ITEM_COLUMNS = ("project_id", "data", "role", "created_at", "external_id")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--pg", default=os.environ.get("TBAL_BENCH_PG", DEFAULT_PG))
    parser.add_argument("--port", type=int, default=18765)
    parser.add_argument("--tmp", default=None, help="folder for the large files (default: the system's)")
    parser.add_argument("--resend", type=int, default=0, help="then re-send the first R rows (all skipped)")
    parser.add_argument(
        "--staged",
        type=int,
        default=0,
        help="also ingest the first S rows in this process through the staging table (the path of "
        "PostgreSQL before issue 6, and its path for re-sent rows now), beside the COPY path",
    )
    parser.add_argument("--out", default="scale-ingest")
    args = parser.parse_args()

    record: dict[str, Any] = {"n": args.n, "dim": args.dim, "before": conditions()}
    with scratch_dir(args.tmp) as tmp, pg_schema(args.pg) as url:
        folder = Path(tmp)
        npy = folder / "X.npy"
        write_features(npy, args.n, args.dim)
        record["file_bytes"] = npy.stat().st_size
        server = _start_server(url, folder, args.port, npy.stat().st_size)
        try:
            record.update(_run(args, url, folder, npy, server))
        finally:
            server.terminate()
            server.wait(timeout=30)
    record["after"] = conditions()
    path = save(args.out, record)
    _print(record)
    print(f"saved {path}")
    return 0


def _run(
    args: argparse.Namespace, url: str, folder: Path, npy: Path, server: subprocess.Popen[bytes]
) -> dict[str, Any]:
    from sqlalchemy import create_engine, text

    from app.db.session import make_engine, make_session_factory
    from app.projects.keys_service import create_key
    from app.settings import Settings

    engine = make_engine(Settings(database_url=url))
    _key, secret = create_key(make_session_factory(engine), "scale-bench")
    engine.dispose()
    base = f"http://127.0.0.1:{args.port}"
    headers = {"Authorization": f"Bearer {secret}"}
    client = httpx.Client(base_url=base, headers=headers, timeout=None)
    _wait_ready(client)

    def project() -> int:
        body = {
            "name": f"scale-{uuid.uuid4().hex[:8]}",
            "classes": [f"c{i}" for i in range(10)],
            "data_kind": "features",
            "input_shape": [args.dim],
            "settings": {},
        }
        response = client.post("/api/v1/projects", json=body)
        response.raise_for_status()
        return int(response.json()["id"])

    conninfo = libpq_url(url)
    out: dict[str, Any] = {"baseline_copy": []}
    for label in ("before", "after"):
        if label == "after":
            out["api"] = _upload(client, server.pid, project(), npy, args.n, conninfo)
        pid = project()
        encoded = folder / "rows.copy"
        out["copy_bytes"] = encoded_items_file(encoded, npy, pid, "x")
        run = copy_file(conninfo, "items", ITEM_COLUMNS, encoded)
        encoded.unlink()
        run["items_per_s"] = args.n / run["wall_s"]
        run["loadavg"] = os.getloadavg()[0]
        out["baseline_copy"].append(run)
    if args.resend:
        part = folder / "part.npy"
        np.save(part, np.load(npy, mmap_mode="r")[: args.resend])
        pid = out["api"]["project_id"]
        out["resend"] = _upload(client, server.pid, pid, part, args.resend, conninfo, expect_new=0)
    if args.staged:
        out["staged"] = _in_process(url, folder, npy, args.staged, args.dim)
    engine = create_engine(url)
    with engine.connect() as conn:
        counted = conn.execute(
            text("SELECT count(*) FROM items WHERE project_id = :p"), {"p": out["api"]["project_id"]}
        ).scalar_one()
        out["items_table_bytes"] = conn.execute(text("SELECT pg_total_relation_size('items')")).scalar_one()
    engine.dispose()
    if counted != args.n:
        raise SystemExit(f"expected {args.n} items in the project, found {counted}")
    copy_rate = float(np.mean([r["items_per_s"] for r in out["baseline_copy"]]))
    copy_cpu = float(np.mean([r["server_cpu_s"] for r in out["baseline_copy"]]))
    out["ratio_items_per_s"] = out["api"]["items_per_s"] / copy_rate
    out["ratio_server_cpu"] = out["api"]["pg_backend_cpu_s"] / copy_cpu if copy_cpu else None
    return out


def _upload(
    client: httpx.Client,
    server_pid: int,
    project_id: int,
    npy: Path,
    n: int,
    conninfo: str,
    *,
    expect_new: int | None = None,
) -> dict[str, Any]:
    backends = _api_backends(server_pid, conninfo)
    pg_cpu0 = {pid: proc_cpu_s(pid) for pid in backends}
    sampler = RssSampler(server_pid)
    sampler.reset()
    api_cpu0 = proc_cpu_s(server_pid)
    rss0 = proc_rss_mb(server_pid)
    client_cpu0 = time.process_time()
    start = time.perf_counter()
    with sampler:
        response = client.post(
            f"/api/v1/projects/{project_id}/items/upload",
            content=_chunks(npy),
            headers={"content-type": "application/octet-stream", "content-length": str(npy.stat().st_size)},
        )
    wall = time.perf_counter() - start
    response.raise_for_status()
    result = response.json()
    backends = _api_backends(server_pid, conninfo)
    pg_cpu = sum(proc_cpu_s(pid) - pg_cpu0.get(pid, 0.0) for pid in backends)
    want = n if expect_new is None else expect_new
    if result["inserted"] != want or result["received"] != n:
        raise SystemExit(f"unexpected upload result {result}")
    return {
        "project_id": project_id,
        "result": result,
        "wall_s": wall,
        "items_per_s": n / wall,
        "api_cpu_s": proc_cpu_s(server_pid) - api_cpu0,
        "pg_backend_cpu_s": pg_cpu,
        "client_cpu_s": time.process_time() - client_cpu0,
        "api_rss_before_mb": rss0,
        "api_peak_rss_mb": sampler.peak_mb,
        "api_peak_anon_mb": sampler.peak_anon_mb,
        "api_hwm_mb": proc_rss_mb(server_pid, "VmHWM"),
        "feature_matrix_mb": npy.stat().st_size / 2**20,
        "loadavg": os.getloadavg()[0],
    }


def _in_process(url: str, folder: Path, npy: Path, n: int, dim: int) -> dict[str, Any]:
    """The first n rows ingested by the service function in this process, once through COPY and once
    through the staging table (``copy_chunk`` made to decline, as on a conflict), each into a new
    project."""
    from app.db.models import Project
    from app.db.session import make_engine, make_session_factory
    from app.items import repository as items_repo
    from app.items import service as ingest
    from app.settings import Settings

    part = folder / "staged.npy"
    np.save(part, np.load(npy, mmap_mode="r")[:n])
    engine = make_engine(Settings(database_url=url))
    factory = make_session_factory(engine)
    out: dict[str, Any] = {"n": n}
    real = items_repo.copy_chunk
    for path in ("copy", "staged"):
        items_repo.copy_chunk = (lambda *a: None) if path == "staged" else real  # type: ignore[assignment]
        try:
            with factory() as session:
                project = Project(
                    name=f"in-process-{path}",
                    classes=["a"],
                    data_kind="features",
                    input_shape=[dim],
                    settings={},
                )
                session.add(project)
                session.commit()
                backend = session.connection().connection.driver_connection.info.backend_pid
                cpu0, server0 = time.process_time(), proc_cpu_s(backend)
                start = time.perf_counter()
                result = ingest.ingest_file(session, project, part, id_prefix="x", chunk_rows=5_000)
                wall = time.perf_counter() - start
                out[path] = {
                    "wall_s": wall,
                    "items_per_s": n / wall,
                    "client_cpu_s": time.process_time() - cpu0,
                    "server_cpu_s": proc_cpu_s(backend) - server0,
                    "inserted": result.inserted,
                    "loadavg": os.getloadavg()[0],
                }
        finally:
            items_repo.copy_chunk = real  # type: ignore[assignment]
    engine.dispose()
    part.unlink()
    return out


def _api_backends(server_pid: int, conninfo: str) -> list[int]:
    """PostgreSQL backend pids serving the API process: its TCP sockets' local ports, matched with
    ``pg_stat_activity.client_port``."""
    import psycopg

    inodes = set()
    for fd in Path(f"/proc/{server_pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[9] in inodes:
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("SELECT pid, client_port FROM pg_stat_activity WHERE client_port IS NOT NULL")
        return [pid for pid, port in rows if port in ports]


def _chunks(path: Path, size: int = 1 << 22) -> Iterator[bytes]:
    with open(path, "rb") as src:
        while block := src.read(size):
            yield block


def _start_server(url: str, folder: Path, port: int, body_bytes: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TBAL_DATABASE_URL": url,
        "TBAL_UPLOAD_DIR": str(folder / "uploads"),
        "TBAL_ARTIFACTS_DIR": str(folder / "artifacts"),
        "TBAL_MAX_REQUEST_BYTES": str(body_bytes + (1 << 20)),
    }
    tbal = Path(sys.executable).parent / "tbal"
    return subprocess.Popen(
        [str(tbal), "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        cwd=str(Path(__file__).resolve().parents[1]),
    )


def _wait_ready(client: httpx.Client, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.get("/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("the API did not start")


def _print(record: dict[str, Any]) -> None:
    api = record["api"]
    print(f"items: {record['n']:,} × {record['dim']} float32 ({record['file_bytes'] / 2**20:,.0f} MiB file)")
    for i, run in enumerate(record["baseline_copy"]):
        print(
            f"plain COPY #{i + 1}: {run['items_per_s']:,.0f} items/s, wall {run['wall_s']:.1f} s, "
            f"PostgreSQL CPU {run['server_cpu_s']:.1f} s, load {run['loadavg']:.1f}"
        )
    print(
        f"API upload: {api['items_per_s']:,.0f} items/s, wall {api['wall_s']:.1f} s, PostgreSQL CPU "
        f"{api['pg_backend_cpu_s']:.1f} s, API CPU {api['api_cpu_s']:.1f} s, API peak RSS "
        f"{api['api_peak_rss_mb']:,.0f} MiB (anonymous {api['api_peak_anon_mb']:,.0f}; before "
        f"{api['api_rss_before_mb']:,.0f}; matrix {api['feature_matrix_mb']:,.0f}), load {api['loadavg']:.1f}"
    )
    print(
        f"ratio to plain COPY: {record['ratio_items_per_s']:.2f} (items/s), "
        f"{record['ratio_server_cpu']:.2f} (PostgreSQL CPU)"
    )
    if "staged" in record:
        for path in ("copy", "staged"):
            r = record["staged"][path]
            print(
                f"in process, {record['staged']['n']:,} rows by {path}: {r['items_per_s']:,.0f} items/s, "
                f"PostgreSQL CPU {r['server_cpu_s']:.1f} s, client CPU {r['client_cpu_s']:.1f} s"
            )
    if "resend" in record:
        r = record["resend"]
        print(f"re-send of {r['result']['received']:,} known rows: {r['items_per_s']:,.0f} items/s (skipped)")


if __name__ == "__main__":
    raise SystemExit(main())
