"""Load test: concurrent clients mixing ingestion, label posts, queue reads and auto-label pages against
``tbal serve`` on PostgreSQL; errors and p50/p99 latency per kind of request.

Usage (PostgreSQL at TBAL_TEST_POSTGRES_URL or --postgres; the script makes and drops its own database):

    .venv/bin/python bench/load_test.py --clients 50 --duration 60 --json bench/results/load.json

Set-up, before the clock starts: a fresh database migrated with ``tbal migrate``, ``tbal serve`` started
as a child process (``--workers`` uvicorn processes, in-process rounds, ``--threads`` torch threads),
an admin key, one project of ``--items`` Gaussian-blob items (64 float32 features, 3 classes) uploaded
as ``.npz``, its validation and seed sets answered from ground truth, and one real round run to the end
so that auto-label pages have rows. Then ``--clients`` asyncio clients (httpx, one connection each) loop for
``--duration`` seconds, each request drawn with these weights:

- ``ingest``: POST /items, a JSON batch of ``--batch`` new items (unique external ids);
- ``labels``: POST /labels, 10 human labels for unlabeled items of the client's own (annotators do not
  label the same item at the same time): its slice of the pool left after the set-up round, then the
  items it ingested itself (a class drawn at random: the value does not matter to the load);
- ``queue``: GET /queue?limit=100 at a random after_id;
- ``auto_labels``: GET /auto-labels?limit=500 at a random after_id.

An error is a transport failure or any status other than the expected one (200). The load generator
runs on the same machine as the server (2 cores here): the figures are what one such machine serves
while also generating the load.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("ingest", "labels", "queue", "auto_labels")
WEIGHTS = (0.15, 0.25, 0.3, 0.3)
DIM = 64
CLASSES = ["a", "b", "c"]


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    error_samples: list[str] = field(default_factory=list)

    def record(self, kind: str, seconds: float, ok: bool, detail: str = "") -> None:
        self.latencies[kind].append(seconds)
        if not ok:
            self.errors[kind] += 1
            if len(self.error_samples) < 20:
                self.error_samples.append(f"{kind}: {detail[:300]}")


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(len(CLASSES), DIM))
    y = rng.integers(0, len(CLASSES), size=n)
    X = centers[y] + rng.normal(scale=1.0, size=(n, DIM))
    return X.astype(np.float32), y.astype(np.int64)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(database_url: str, threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TBAL_")}
    env.update(
        TBAL_DATABASE_URL=database_url,
        TBAL_TORCH_THREADS=str(threads),
        TBAL_TRAIN_DEVICE="cpu",
        TBAL_DB_POOL_SIZE="20",
        OMP_NUM_THREADS=str(threads),
        PYTHONPATH=str(ROOT),
    )
    env["TBAL_ARTIFACTS_DIR"] = tempfile.mkdtemp(prefix="tbal-load-artifacts-")
    return env


def _tbal(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tbal.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"tbal {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def start_server(env: dict[str, str], log: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    command = [sys.executable, "-m", "tbal.cli", "serve", "--no-migrate", "--port", str(port)]
    command += ["--log-level", "warning", "--workers", str(workers)]
    with log.open("wb") as out:
        server = subprocess.Popen(
            command,
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"tbal serve exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return server, base
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    server.kill()
    raise RuntimeError("tbal serve did not start")


def prepare(base: str, key: str, n_items: int) -> dict[str, Any]:
    """One project with ``n_items`` items, validation and seed sets answered, one round finished."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=600) as client:
        project = client.post(
            "/api/v1/projects",
            json={
                "name": f"load-{uuid.uuid4().hex[:6]}",
                "classes": CLASSES,
                "data_kind": "features",
                "input_shape": [DIM],
                "settings": {
                    "validation_size": 1000,
                    "seed_size": 200,
                    "label_budget": 100_000,
                    "batch_size": 200,
                    "model": "mlp",
                    "hidden": [64],
                    "epochs": 5,
                    "epsilon": 0.1,
                },
            },
        ).json()
        pid = project["id"]
        X, y = blobs(n_items, seed=0)
        buffer = io.BytesIO()
        np.savez(buffer, X=X, y=y, external_ids=np.array([f"s{i}" for i in range(n_items)]))
        up = client.post(
            f"/api/v1/projects/{pid}/items/upload",
            content=buffer.getvalue(),
            headers={"Content-Type": "application/octet-stream"},
        )
        up.raise_for_status()
        client.post(f"/api/v1/projects/{pid}/simulate").raise_for_status()
        started = client.post(f"/api/v1/projects/{pid}/rounds")
        started.raise_for_status()
        rid = started.json()["id"]
        while (body := client.get(f"/api/v1/rounds/{rid}").json())["status"] not in ("succeeded", "failed"):
            time.sleep(0.5)
        if body["status"] != "succeeded":
            raise RuntimeError(f"set-up round failed: {body['error']}")
        pool = []
        after = 0
        while True:
            page = client.get(
                f"/api/v1/projects/{pid}/items", params={"role": "pool", "after_id": after, "limit": 10_000}
            ).json()
            pool += [i["external_id"] for i in page["items"] if i["auto_label"] is None]
            if page["next_after_id"] is None:
                break
            after = page["next_after_id"]
        return {
            "project_id": pid,
            "pool": pool,
            "max_auto_id": body["metrics"]["auto_labeled_total"],
            "auto_labeled": body["metrics"]["auto_labeled"],
            "truth": {f"s{i}": int(y[i]) for i in range(n_items)},
        }


async def client_loop(
    index: int,
    base: str,
    key: str,
    ctx: dict[str, Any],
    slice_: list[str],
    stop: float,
    batch: int,
    stats: Stats,
) -> None:
    rng = random.Random(index)
    pid = ctx["project_id"]
    to_label = list(slice_)
    X, _ = blobs(batch, seed=1000 + index)
    features = [row.tolist() for row in X]
    sent = 0
    labeled = 0
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60, limits=limits) as client:
        while time.monotonic() < stop:
            kind = rng.choices(KINDS, WEIGHTS)[0]
            if kind == "labels" and labeled + 10 > len(to_label):
                kind = "queue"
            if kind == "ingest":
                items = [
                    {"external_id": f"c{index}-{sent}-{j}", "features": features[j]} for j in range(batch)
                ]
                to_label += [it["external_id"] for it in items]
                sent += 1
                request = client.post(f"/api/v1/projects/{pid}/items", json={"items": items})
            elif kind == "labels":
                chunk = to_label[labeled : labeled + 10]
                labeled += 10
                labels = [
                    {"external_id": e, "label": CLASSES[ctx["truth"].get(e, rng.randrange(len(CLASSES)))]}
                    for e in chunk
                ]
                request = client.post(f"/api/v1/projects/{pid}/labels", json={"labels": labels})
            elif kind == "queue":
                params = {"limit": 100, "after_id": rng.randint(0, 2000)}
                request = client.get(f"/api/v1/projects/{pid}/queue", params=params)
            else:
                params = {"limit": 500, "after_id": rng.randint(0, max(1, ctx["max_auto_id"] - 500))}
                request = client.get(f"/api/v1/projects/{pid}/auto-labels", params=params)
            start = time.perf_counter()
            try:
                response = await request
                ok, detail = response.status_code == 200, f"{response.status_code} {response.text}"
            except httpx.HTTPError as exc:
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            stats.record(kind, time.perf_counter() - start, ok, detail)


async def run_load(
    base: str, key: str, ctx: dict[str, Any], clients: int, duration: float, batch: int
) -> Stats:
    stats = Stats()
    pool = ctx["pool"]
    per = len(pool) // clients
    stop = time.monotonic() + duration
    await asyncio.gather(
        *(
            client_loop(i, base, key, ctx, pool[i * per : (i + 1) * per], stop, batch, stats)
            for i in range(clients)
        )
    )
    return stats


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summarise(stats: Stats, duration: float) -> dict[str, Any]:
    kinds: dict[str, dict[str, float | None]] = {}
    for kind in KINDS:
        lat = stats.latencies[kind]
        kinds[kind] = {
            "requests": len(lat),
            "errors": stats.errors[kind],
            "per_s": len(lat) / duration,
            "p50_ms": None if not lat else 1000 * statistics.median(lat),
            "p99_ms": None if not lat else 1000 * (_pct(lat, 0.99) or 0.0),
            "max_ms": None if not lat else 1000 * max(lat),
        }
    total = sum(len(stats.latencies[kind]) for kind in KINDS)
    return {
        "kinds": kinds,
        "requests": total,
        "errors": sum(stats.errors.values()),
        "per_s": total / duration,
        "error_samples": stats.error_samples,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| request | requests | errors | per s | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, k in result["summary"]["kinds"].items():
        ms = [f"{k[m]:.1f}" if k[m] is not None else "–" for m in ("p50_ms", "p99_ms", "max_ms")]
        lines.append(f"| {kind} | {k['requests']} | {k['errors']} | {k['per_s']:.1f} | {' | '.join(ms)} |")
    s = result["summary"]
    lines.append(f"| all | {s['requests']} | {s['errors']} | {s['per_s']:.1f} | | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--postgres",
        default=os.environ.get("TBAL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--items", type=int, default=20_000, help="items in the project before the load")
    parser.add_argument("--batch", type=int, default=100, help="items per ingestion request")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the server (set-up round)")
    parser.add_argument("--workers", type=int, default=1, help="API processes of tbal serve")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    admin_url = make_url(args.postgres)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"tbal_load_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    database_url = admin_url.set(database=name).render_as_string(hide_password=False)
    env = _env(database_url, args.threads)
    log = Path(tempfile.mkdtemp(prefix="tbal-load-")) / "serve.log"
    server = None
    try:
        _tbal(env, "migrate")
        key = _tbal(env, "create-key", "--name", "load-test").strip()
        server, base = start_server(env, log, args.workers)
        t0 = time.perf_counter()
        ctx = prepare(base, key, args.items)
        setup_s = time.perf_counter() - t0
        print(f"set-up: {args.items} items, {ctx['auto_labeled']} auto-labeled, in {setup_s:.1f} s")
        started = time.perf_counter()
        stats = asyncio.run(run_load(base, key, ctx, args.clients, args.duration, args.batch))
        elapsed = time.perf_counter() - started
        result = {
            "command": "python bench/load_test.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "clients": args.clients,
            "duration_s": elapsed,
            "items_before": args.items,
            "auto_labels": ctx["auto_labeled"],
            "ingest_batch": args.batch,
            "weights": dict(zip(KINDS, WEIGHTS, strict=True)),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "server": f"tbal serve --workers {args.workers} on PostgreSQL; load generator on this machine",
            "summary": summarise(stats, elapsed),
        }
        print(markdown(result))
        for sample in result["summary"]["error_samples"]:
            print("error:", sample)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2) + "\n")
        return 0 if result["summary"]["errors"] == 0 else 1
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
