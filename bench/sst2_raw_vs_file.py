"""SST-2 from raw sentences through the API against ``tbal run`` on the embedding file (issue 13 item 1):
same sentences (the first ``--pool`` of SST-2's training split), the ``text-paper`` preset, seed 0.

    nice -n 10 .venv/bin/python bench/sst2_raw_vs_file.py --pool 20000 --seed 0 \\
        --json bench/results/raw_ingest/sst2_raw_vs_file.json

- ``file``: ``tbal run --data <those rows of X_train as a .npz> --preset text-paper --seeds 0`` (the
  embeddings stored in the file, float16, computed once elsewhere with all-MiniLM-L6-v2);
- ``service``: a text project (``encoder: minilm``, ``preset: text-paper``, seed 0) on the embedded
  default, its sentences uploaded as one JSONL file (an ingest job encodes them with MiniLM in the
  service), humans answered from the ground truth (``/simulate``), rounds until the budget is spent.

The two see the same sentences with the same budgets and seed; their features differ by MiniLM's float32
output against the file's float16 copy (up to ~1e-3), so thresholds, and with them coverage, may move a
little; the error guarantee holds for both. Prints one JSON record (coverage, true error, rounds, times,
the load average).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from raw_ingest import SST2, _load, _service  # noqa: E402  (the service in process, as raw_ingest runs it)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with np.load(SST2) as z:
        texts = bytes(z["text_train_utf8"]).decode("utf-8").split("\n")[: args.pool]
        X = z["X_train"][: args.pool].astype(np.float32)
        y = z["y_train"][: args.pool].astype(np.int64)
        classes = [str(c) for c in z["class_names"]]
    record: dict[str, Any] = {"pool": args.pool, "seed": args.seed, "load_before": _load()}
    record["file"] = _tbal_run(X, y, classes, args.seed)
    print(json.dumps({"file": record["file"]}), flush=True)
    record["service"] = _through_the_api(texts, y, classes, args)
    record["load_after"] = _load()
    print(json.dumps(record), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1))


def _tbal_run(X: np.ndarray, y: np.ndarray, classes: list[str], seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "sst2.npz", Path(tmp) / "run.json"
        np.savez(data, X=X, y=y, class_names=np.array(classes))
        start = time.perf_counter()
        command = [sys.executable, "-m", "tbal.cli", "run", "--data", str(data), "--preset", "text-paper"]
        subprocess.run([*command, "--seeds", str(seed), "--json", str(out), "--quiet"], check=True, cwd=ROOT)
        elapsed = time.perf_counter() - start
        run = json.loads(out.read_text())["runs"][0]
    return {
        "command": "tbal run --data <first rows of X_train>.npz --preset text-paper --seeds 0",
        "coverage": run["coverage"],
        "true_error": run["true_error"],
        "auto_labeled": run["auto_labeled"],
        "rounds": len(run["rounds"]),
        "per_round_coverage": [r["coverage"] for r in run["rounds"]],
        "seconds": round(elapsed, 1),
    }


def _through_the_api(
    texts: list[str], y: np.ndarray, classes: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    start = time.perf_counter()
    with _service(args) as api:
        pid = api.project(
            classes=classes,
            data_kind="text",
            settings={"encoder": args.encoder, "preset": "text-paper"},
            seed=args.seed,
        )
        ingest = api.upload_texts(pid, texts, y)
        rounds = api.drive(pid)
    last = rounds[-1] if rounds else {}
    return {
        "encoder": args.encoder,
        "ingest": ingest,
        "coverage": last.get("coverage_total"),
        "true_error": last.get("true_error"),
        "auto_labeled": sum(r["auto_labeled"] or 0 for r in rounds),
        "rounds": len(rounds),
        "per_round_coverage": [r["coverage_total"] for r in rounds],
        "seconds": round(time.perf_counter() - start, 1),
    }


if __name__ == "__main__":
    main()
