"""Latency of Label Studio's ``/predict`` against a running tbal: 10,000 tasks in one call.

Starts ``tbal serve`` (embedded default: SQLite file, in-process rounds) in a temporary folder, makes a
project from SST-2 sentence embeddings (``../shared/data/sst2_minilm.npz``: 384-d MiniLM vectors, the
texts beside them) with a first model, connects it to Label Studio and times ``POST /predict`` over
loopback HTTP with task objects shaped like the ones Label Studio 1.23 sends (the recorded session in
``../shared/fixtures/label-studio``):

- ``by-id``: tasks name existing items (``data.external_id``), as when the items were uploaded to tbal
  in binary and imported into Label Studio from tbal's task file;
- ``inline, new``: tasks carry their 384 features (``data.features``): the call creates 10,000 items;
- ``inline, known``: the same call again (the items exist).

Usage: ``.venv/bin/python bench/label_studio_predict.py [--n 10000] [--data FILE] [--repeat 3]``.
Prints a markdown table (seconds per call, request size). The machine's core count matters (scoring
is a torch MLP forward pass; the rest is JSON and SQL).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from examples.demo import create_api_key, free_port, start_server  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "sst2_minilm.npz"
LABEL_CONFIG = (
    '<View><Text name="text" value="$text"/><Choices name="sentiment" toName="text" choice="single">'
    '<Choice value="negative"/><Choice value="positive"/></Choices></View>'
)
SETTINGS: dict[str, Any] = {
    "model": "mlp",
    "hidden": [128],
    "epochs": 20,
    "confidence": "softmax",
    "validation_size": 1000,
    "seed_size": 500,
    "label_budget": 600,
    "batch_size": 100,
    "epsilon": 0.1,
}


def ls_task(task_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """A task as Label Studio 1.23 serialises it for /predict (TaskSimpleSerializer fields)."""
    return {
        "id": task_id,
        "data": data,
        "meta": {},
        "created_at": "2026-11-22T05:39:19.101506Z",
        "updated_at": "2026-11-22T05:39:19.101542Z",
        "is_labeled": False,
        "overlap": 1,
        "inner_id": task_id,
        "total_annotations": 0,
        "cancelled_annotations": 0,
        "total_predictions": 0,
        "comment_count": 0,
        "unresolved_comment_count": 0,
        "last_comment_updated_at": None,
        "project": 1,
        "updated_by": None,
        "file_upload": None,
        "comment_authors": [],
        "annotations": [],
        "predictions": [],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="tasks per /predict call")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--pool", type=int, default=20_000, help="items uploaded before (by-id tasks use them)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="calls per mode (median reported)")
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"data file missing: {args.data}", file=sys.stderr)
        return 2
    z = np.load(args.data)
    texts = bytes(z["text_train_utf8"]).decode().split("\n")
    X, y = z["X_train"].astype(np.float32), z["y_train"].astype(np.int64)
    classes = [str(c) for c in z["class_names"]]
    if args.pool + args.n > X.shape[0] or args.n > args.pool:
        print(f"need n <= pool and pool + n <= {X.shape[0]}", file=sys.stderr)
        return 2
    os.environ.setdefault("TBAL_TORCH_THREADS", str(os.cpu_count() or 1))
    with tempfile.TemporaryDirectory(prefix="tbal-bench-ls-") as tmp:
        workdir = Path(tmp)
        server = start_server(workdir, free_port())
        try:
            key = create_api_key(server.env, "bench")
            rows = run(server.base_url, key, X, y, texts, classes, args)
        finally:
            server.stop()
    print(
        f"\n/predict latency, {args.n} tasks per call, {X.shape[1]}-d features, {os.cpu_count()} cores, "
        f"SQLite, median of {args.repeat}\n"
    )
    print("| mode | request MB | seconds (median) | all calls (s) |")
    print("| --- | --- | --- | --- |")
    for mode, mb, times in rows:
        print(
            f"| {mode} | {mb:.1f} | {statistics.median(times):.2f} | {', '.join(f'{t:.2f}' for t in times)} |"
        )
    return 0


def run(
    base: str,
    key: str,
    X: np.ndarray,
    y: np.ndarray,
    texts: list[str],
    classes: list[str],
    args: argparse.Namespace,
) -> list[tuple[str, float, list[float]]]:
    client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=600.0)
    project = (
        client.post(
            "/api/v1/projects",
            json={
                "name": "sst2-ls-bench",
                "classes": classes,
                "data_kind": "features",
                "input_shape": [X.shape[1]],
                "settings": SETTINGS,
            },
        )
        .raise_for_status()
        .json()
    )
    pid = project["id"]
    buffer = io.BytesIO()
    ids = np.array([f"sst2-{i}" for i in range(args.pool)])
    np.savez(buffer, X=X[: args.pool], y=y[: args.pool], external_ids=ids)
    client.post(
        f"/api/v1/projects/{pid}/items/upload",
        content=buffer.getvalue(),
        headers={"Content-Type": "application/octet-stream"},
    ).raise_for_status()
    client.post(f"/api/v1/projects/{pid}/simulate").raise_for_status()
    round_ = client.post(f"/api/v1/projects/{pid}/rounds").raise_for_status().json()
    while round_["status"] not in ("succeeded", "failed"):
        time.sleep(0.5)
        round_ = client.get(f"/api/v1/rounds/{round_['id']}").json()
    if round_["status"] != "succeeded":
        raise SystemExit(f"the first round failed: {round_['error']}")
    backend = client.post(f"/api/v1/projects/{pid}/label-studio/connection").raise_for_status().json()["url"]
    ls = httpx.Client(timeout=600.0)  # Label Studio's side: no Authorization header
    t0 = time.perf_counter()
    ls.get(f"{backend}/health").raise_for_status()
    health_ms = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    ls.post(f"{backend}/setup", json={"project": "1.1", "schema": LABEL_CONFIG}).raise_for_status()
    setup_ms = (time.perf_counter() - t0) * 1000
    print(f"health {health_ms:.1f} ms, setup {setup_ms:.1f} ms; first round: {round_['model_version']}")

    n, start = args.n, args.pool
    by_id = [ls_task(i, {"text": texts[i], "external_id": f"sst2-{i}"}) for i in range(n)]
    inline = [
        ls_task(
            start + i, {"text": texts[start + i], "features": [round(v, 5) for v in X[start + i].tolist()]}
        )
        for i in range(n)
    ]
    rows: list[tuple[str, float, list[float]]] = []
    for mode, tasks in (("by-id", by_id), ("inline, new", inline), ("inline, known", inline)):
        body = json.dumps(
            {
                "tasks": tasks,
                "project": "1.1",
                "label_config": LABEL_CONFIG,
                "params": {"login": None, "password": None, "context": None},
            }
        ).encode()
        repeat = 1 if mode == "inline, new" else args.repeat
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            response = ls.post(
                f"{backend}/predict", content=body, headers={"Content-Type": "application/json"}
            )
            times.append(time.perf_counter() - t0)
            response.raise_for_status()
            results = response.json()["results"]
            assert len(results) == n and all(r["result"] for r in results)
        rows.append((mode, len(body) / 1e6, times))
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
