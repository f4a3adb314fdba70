"""SST-2 from raw sentences, three ways (issue 13 items 1 and 6): the same sentences (the first ``--pool`` of
SST-2's training split), the ``text-paper`` preset, the same seeds.

    nice -n 10 .venv/bin/python bench/sst2_raw_vs_file.py --pool 20000 --seeds 0,1 \\
        --json bench/results/raw_ingest/sst2_raw_vs_file_20k_3way.json

- ``service``: a text project (``encoder: minilm``, ``preset: text-paper``, one project a seed) on the
  embedded default, its sentences uploaded as one JSONL file (an ingest job encodes them with MiniLM in
  the service), humans answered from the ground truth (``/simulate``), rounds until the budget is spent;
- ``csv``: ``tbal run --data <the sentences>.csv --text-column text --label-column label --encoder minilm
  --preset text-paper`` (the features cached beside the file: encoded once, read back for the next seed);
- ``file``: ``tbal run --data <those rows of X_train as a .npz> --preset text-paper`` (the embeddings stored
  in the file, float16, computed once elsewhere with all-MiniLM-L6-v2).

``--arms`` picks some of them. ``--service-settings default`` creates the service's project without a
preset (a text project's own default, ``text-paper`` since the twenty-second session of issue 11);
``--file-preset none`` runs the command arms on the library's defaults (``--preset none``).
``--service-settings nothing`` names neither a preset nor an encoder: what a text project gets by default
(``text-finetune``, MiniLM fine-tuned on word pieces, since the twenty-third session); the ``csv`` arm
matches it with ``--file-preset text-finetune --encoder minilm-tokens`` (the ``file`` arm holds embeddings
only and cannot run it).
Every training runs on one torch thread (``--threads 1`` and the service's
``TBAL_TORCH_THREADS=1``): another thread count sums in another order. The command-line arms run in a
thread of their own while the service is driven (both encode MiniLM at the same time on a 2-core machine;
the times say so). The record holds, per arm and seed, coverage, true error and each round's thresholds
and auto-labels, and compares the features: the service's stored rows against the CSV's cached ones and
the file's float16 copy. Coverage is each path's own figure: the service's ``coverage_total`` counts
every item of the project (the N_v validation items included), ``tbal run``'s the pool (items less N_v);
the auto-label counts compare directly.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("TBAL_TORCH_THREADS", "1")  # the service's rounds: one torch thread, as --threads 1

from raw_ingest import API, SST2, Service, _load, _service  # noqa: E402  (the service in process)

ARMS = ("service", "csv", "file")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=20_000)
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"some of {', '.join(ARMS)}")
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=512, help="the ingest job's first batch")
    parser.add_argument(
        "--processes", type=int, default=None, help="the service's ingest_processes (default: its default)"
    )
    parser.add_argument(
        "--database-url", help="the service's database (default: SQLite in a temporary folder)"
    )
    parser.add_argument(
        "--work-dir", type=Path, help="where the .csv / .npz and the CSV's cached features go"
    )
    parser.add_argument(
        "--service-settings",
        choices=("text-paper", "default", "nothing"),
        default="text-paper",
        help="the service arm's project: preset text-paper; 'default': no preset named, --encoder named "
        "(text-paper since the twenty-third session); 'nothing': neither named (a text project's own "
        "default, tbal.config.preset_for_data: text-finetune)",
    )
    parser.add_argument(
        "--file-preset",
        choices=("text-paper", "text-finetune", "none"),
        default="text-paper",
        help="the csv and file arms' preset ('none': the library's defaults)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    if not set(arms) <= set(ARMS):
        parser.error(f"--arms: expected some of {', '.join(ARMS)}, got {args.arms!r}")
    with np.load(SST2) as z:
        texts = bytes(z["text_train_utf8"]).decode("utf-8").split("\n")[: args.pool]
        X16 = z["X_train"][: args.pool]
        y = z["y_train"][: args.pool].astype(np.int64)
        classes = [str(c) for c in z["class_names"]]
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        record = Record(args.json, {"pool": args.pool, "seeds": seeds, "encoder": args.encoder})
        record.set("load_before", _load())
        command_arms = [a for a in arms if a != "service"]
        commands = threading.Thread(
            target=_command_arms,
            args=(command_arms, texts, X16, y, classes, seeds, args.encoder, work, record, args.file_preset),
        )
        commands.start()
        if "service" in arms:
            _service_arm(texts, y, classes, seeds, args, work, record)
        commands.join()
        record.set("load_after", _load())
        record.set("comparison", _compare(record.data, X16, work))
    print(json.dumps(record.data["comparison"], indent=1), flush=True)


class Record:
    """The run's JSON record, written again after every run of every arm (a comparison of hours that is
    stopped part-way keeps what it measured); the arms add to it from two threads."""

    def __init__(self, path: Path | None, data: dict[str, Any]) -> None:
        self.path, self.data, self._lock = path, data, threading.Lock()

    def set(self, key: str, value: Any) -> None:
        with self._lock:
            self.data[key] = value
            self._write()

    def add(self, arm: str, run: dict[str, Any]) -> None:
        with self._lock:
            self.data.setdefault(arm, []).append(run)
            self._write()

    def _write(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".part")
        partial.write_text(json.dumps(self.data, indent=1))
        partial.replace(self.path)


def _command_arms(
    arms: list[str],
    texts: list[str],
    X16: np.ndarray,
    y: np.ndarray,
    classes: list[str],
    seeds: list[int],
    encoder: str,
    work: Path,
    record: Record,
    preset: str,
) -> None:
    """``tbal run`` on the CSV of the sentences, then on the file's rows (one seed a command)."""
    if "csv" in arms:
        data = _write_csv(work / "sst2.csv", texts, [classes[v] for v in y])
        flags = ["--text-column", "text", "--label-column", "label", "--encoder", encoder]
        for seed in seeds:
            record.add("csv", _tbal_run(data, flags, seed, work, preset))
        print(json.dumps({"csv": _brief(record.data["csv"])}), flush=True)
    if "file" in arms:
        data = work / "sst2.npz"
        np.savez(data, X=X16.astype(np.float32), y=y, class_names=np.array(classes))
        for seed in seeds:
            record.add("file", _tbal_run(data, [], seed, work, preset))
        print(json.dumps({"file": _brief(record.data["file"])}), flush=True)


def _write_csv(path: Path, texts: list[str], labels: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, labels, strict=True))
    return path


def _tbal_run(data: Path, flags: list[str], seed: int, work: Path, preset: str) -> dict[str, Any]:
    out = work / f"{data.name}-seed{seed}.json"
    command = ["run", "--data", str(data), *flags, "--preset", preset, "--seeds", str(seed)]
    start, load = time.perf_counter(), _load()
    subprocess.run(
        [sys.executable, "-m", "tbal.cli", *command, "--threads", "1", "--json", str(out), "--quiet"],
        check=True,
        cwd=ROOT,
    )
    run = json.loads(out.read_text())["runs"][0]
    return {
        "seed": seed,
        "command": "tbal " + " ".join(command).replace(str(work) + "/", ""),
        "coverage": run["coverage"],
        "true_error": run["true_error"],
        "auto_labeled": run["auto_labeled"],
        "rounds": len(run["rounds"]),
        "per_round_auto_labeled": [r["auto_labeled_round"] for r in run["rounds"]],
        "per_round_thresholds": [r["thresholds"] for r in run["rounds"]],
        "seconds": round(time.perf_counter() - start, 1),
        "load_before": load,
    }


def _service_settings(args: Any) -> dict[str, Any]:
    """The service arm's project settings: ``text-paper`` named with ``--encoder``; ``default``: that
    encoder and no preset (what the twenty-second session measured: a project naming the frozen
    embedding's encoder, which takes ``text-paper``); ``nothing``: neither (a text project's own default,
    ``text-finetune`` since the twenty-third session)."""
    if args.service_settings == "nothing":
        return {}
    named = {"preset": "text-paper"} if args.service_settings == "text-paper" else {}
    return {"encoder": args.encoder, **named}


def _service_arm(
    texts: list[str],
    y: np.ndarray,
    classes: list[str],
    seeds: list[int],
    args: Any,
    work: Path,
    record: Record,
) -> None:
    """One text project a seed, in one service (the encoder loaded once; each project encodes its own)."""
    with _service(args) as api:
        for seed in seeds:
            start, load = time.perf_counter(), _load()
            pid = api.project(
                classes=classes,
                data_kind="text",
                settings=_service_settings(args),
                seed=seed,
            )
            created = api.http.get(f"{API}/projects/{pid}", headers=api.headers).json()
            ingest = api.upload_texts(pid, texts, y)
            rounds = api.drive(pid)
            stored = _round_metrics(api, pid)
            record.add("service", {
                "seed": seed,
                "encoder": args.encoder,
                "settings": created["settings"],  # with the preset the project took
                "ingest": ingest,
                "coverage": rounds[-1]["coverage_total"] if rounds else None,
                "true_error": rounds[-1]["true_error"] if rounds else None,
                "auto_labeled": sum(r["auto_labeled"] or 0 for r in rounds),
                "rounds": len(rounds),
                "per_round_auto_labeled": [r["auto_labeled"] for r in rounds],
                "per_round_thresholds": [[c["threshold"] for c in m["thresholds"]] for m in stored],
                "seconds": round(time.perf_counter() - start, 1),
                "load_before": load,
            })  # fmt: skip
            print(json.dumps({"service": _brief(record.data["service"][-1:])}), flush=True)
            if seed == seeds[0]:
                np.save(work / "service_features.npy", _features(api, pid))


def _round_metrics(api: Service, pid: int) -> list[dict[str, Any]]:
    page = api.http.get(f"{API}/projects/{pid}/rounds", params={"limit": 1000}, headers=api.headers).json()
    return [r["metrics"] or {} for r in sorted(page["items"], key=lambda r: r["index"])]


def _features(api: Service, pid: int) -> np.ndarray:
    """The project's stored float32 rows in upload order (external ids ``s<row>``)."""
    from sqlalchemy import text

    factory = api.http.app.state.tbal.session_factory
    with factory() as session:
        rows = session.execute(
            text("SELECT external_id, data FROM items WHERE project_id = :p"), {"p": pid}
        ).all()
    rows = sorted(rows, key=lambda r: int(r[0][1:]))
    return np.stack([np.frombuffer(bytes(r[1]), dtype="<f4") for r in rows])


def _compare(record: dict[str, Any], X16: np.ndarray, work: Path) -> dict[str, Any]:
    """Features (service vs the CSV's cache vs the file) and, per seed, whether two arms made the same
    rounds (each round's thresholds and auto-label count)."""
    out: dict[str, Any] = {}
    features = {"file": X16.astype(np.float32)}
    service_path = work / "service_features.npy"
    if service_path.is_file():
        features["service"] = np.load(service_path)
    cached = sorted((work / ".tbal-cache").glob("*.npy"))  # the one file of this CSV and encoder
    if cached:
        features["csv"] = np.load(cached[0])
    for a, b in (("service", "csv"), ("service", "file"), ("csv", "file")):
        # word pieces (text-finetune's encoder) do not compare with the file's embeddings
        if a in features and b in features and features[a].shape == features[b].shape:
            diff = np.abs(features[a] - features[b])
            out[f"features_{a}_vs_{b}"] = {
                "max_abs_diff": float(diff.max()),
                "rows_differing": int((diff > 0).any(axis=1).sum()),
            }
    for a, b in (("service", "csv"), ("service", "file"), ("csv", "file")):
        if a in record and b in record:
            out[f"rounds_{a}_vs_{b}"] = [
                {
                    "seed": ra["seed"],
                    "same_rounds": _rounds_of(ra) == _rounds_of(rb),
                    "auto_labeled": [ra["auto_labeled"], rb["auto_labeled"]],
                    "coverage": [ra["coverage"], rb["coverage"]],
                    "true_error": [ra["true_error"], rb["true_error"]],
                }
                for ra, rb in zip(record[a], record[b], strict=True)
            ]
    return out


def _rounds_of(run: dict[str, Any]) -> list[Any]:
    return list(zip(run["per_round_auto_labeled"], run["per_round_thresholds"], strict=True))


def _brief(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = ("seed", "coverage", "true_error", "auto_labeled", "rounds", "seconds")
    return [{k: r[k] for k in keys} for r in runs]


if __name__ == "__main__":
    main()
