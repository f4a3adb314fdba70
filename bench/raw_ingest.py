"""Raw uploads through the service's ingest jobs (issue 13 item 4): throughput against the encoder's own
``encode`` / the Pillow decode in the same run, and one 100k-sentence text project end to end.

    nice -n 10 .venv/bin/python bench/raw_ingest.py texts --n 3000 --encoder minilm
    nice -n 10 .venv/bin/python bench/raw_ingest.py images --n 10000 [--side 256]
    nice -n 10 .venv/bin/python bench/raw_ingest.py project --n 100000 --encoder hashing:384

Everything runs in this process: the embedded default (SQLite, jobs and rounds in the API process),
reached over FastAPI's TestClient. The service's time runs from the POST of the whole upload (one JSONL
file, or one zip of PNG files, with ``background=true``) to the job's ``finished_at`` (it succeeded):
receiving and parsing the body, staging the raw items, checking, encoding / decoding, and writing items
(and texts). The job is polled every :data:`POLL_S` (a poll every 50 ms, as before, took ~7 ms of CPU
each from the job on these two cores).
The direct figure is the same encoder's ``encode`` (texts; in a worker thread, as the job runs it: see
``direct_in_a_thread``) or :func:`tbal.encoders.images.decode_image` (images: Pillow's decode and
resize, one file after another) on the same items in the same process, run before and after the
service; the ratio uses the faster of the two (the conservative figure).
``project``: SST-2's 67,349 training sentences, repeated with a suffix (`` [2]``) to ``--n``, uploaded,
encoded, then driven with the ``text-paper`` preset (seed 0, human labels answered from the ground
truth by ``/simulate``) until the label budget is spent. The load average is printed with every record:
the machine is shared.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SST2 = SHARED / "sst2_minilm.npz"
CIFAR = SHARED / "cifar10_test_cifar10h.npz"
API = "/api/v1"
PNG_MAGIC = b"\x89PNG"
POLL_S = 0.25
"""How often the benchmark asks for its job (the time itself is the job's ``finished_at``)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("texts", "images", "project"))
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--encoder", default="minilm", help="texts: a tbal.encoders spec")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--database-url", help="default: a new SQLite file (the embedded default); PostgreSQL: migrated"
    )
    parser.add_argument(
        "--batch", type=int, default=512, help="the service's ingest_job_batch (its first batch size)"
    )
    parser.add_argument(
        "--side", type=int, default=0, help="images: JPEG files of side×side (default: PNG 32×32)"
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help="the service's ingest_processes (TBAL_INGEST_PROCESSES; default: its default, min(CPUs, 4))",
    )
    parser.add_argument(
        "--phases",
        action="store_true",
        help="also record the job thread's seconds reading, waiting for the encoding and writing",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also record the job thread's cProfile (its 15 largest own times) and who ran its SQL",
    )
    parser.add_argument("--json", type=Path, help="also write the record here")
    args = parser.parse_args()
    run = {"texts": bench_texts, "images": bench_images, "project": bench_project}[args.what]
    phases = _timed_phases() if args.phases else None
    profile = _profiled_job() if args.profile else None
    database = "postgresql" if (args.database_url or "").startswith("postgresql") else "sqlite"
    record = {"what": args.what, "database": database, "code": _code(), "load_before": _load()}
    record.update(**run(args), load_after=_load())
    if phases is not None:
        record["job_phases_s"] = {name: round(seconds, 3) for name, seconds in phases.items()}
    if profile is not None:
        record["job_profile"] = _profile_lines(profile)
    print(json.dumps(record), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1))


def _code() -> str:
    """Where the service's code was imported from (the checkout, or the old code's worktree)."""
    import app

    return str(Path(app.__file__).resolve().parents[1])


def _warm_pool(args: argparse.Namespace) -> dict[str, Any]:
    """The ingest jobs' worker processes started outside the timing, as a service that ran a job before
    has them (code without the pool: nothing); the start-up time is recorded beside."""
    try:
        from app.items import processes
    except ImportError:
        return {}
    size = processes.pool_size(args.processes)
    start = time.perf_counter()
    started = processes.get_pool(size) is not None
    return {"processes": size if started else 0, "pool_start_s": round(time.perf_counter() - start, 2)}


def _timed_phases() -> dict[str, float]:
    """The job's steps timed as it runs them (``app.items.jobs_run``): reading and checking a batch,
    encoding it (on the encoding thread, or waiting there for the worker processes) and writing one;
    ``span``: from the first read to the last write. Reading and writing run on the job's thread while
    the next batch is encoded."""
    import app.items.jobs_run as job

    seconds: dict[str, float] = {"read": 0.0, "encode": 0.0, "write": 0.0, "batches": 0}
    marks: list[float] = []

    def timed(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                marks.extend((start, time.perf_counter()))
                seconds[name] += marks[-1] - start
                seconds["batches"] += name == "write"
                seconds["span"] = max(marks) - min(marks)

        return run

    job._read = timed("read", job._read)  # type: ignore[assignment]
    job._encode = timed("encode", job._encode)  # type: ignore[assignment]
    job._write = timed("write", job._write)  # type: ignore[assignment]
    return seconds


def _profiled_job() -> cProfile.Profile:
    """cProfile on the job's own thread (reading, checking, writing; the encoding thread and the worker
    processes are not in it: their time shows as the wait for them)."""
    import app.items.jobs_run as job

    profile = cProfile.Profile()
    real = job._pipeline

    def pipeline(*args: Any, **kwargs: Any) -> bool:
        profile.enable()
        try:
            return bool(real(*args, **kwargs))
        finally:
            profile.disable()

    job._pipeline = pipeline  # type: ignore[assignment]
    return profile


def _profile_lines(profile: cProfile.Profile) -> dict[str, list[str]]:
    """The 15 largest own times ("tottime s, calls, function") and the callers of the SQL drivers."""
    stats = pstats.Stats(profile)
    entries: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    rows = sorted(entries.items(), key=lambda kv: -kv[1][2])

    def name(key: tuple[str, int, str]) -> str:
        return f"{Path(key[0]).name}:{key[1]}({key[2]})" if key[0] != "~" else key[2]

    top = [f"{v[2]:.3f} s, {v[1]} calls, {name(k)}" for k, v in rows[:15]]
    sql = [
        f"{callee}: {t:.3f} s, {n} calls from {name(caller)}"
        for k, v in rows
        if (callee := name(k)) in ("<method 'execute' of 'sqlite3.Cursor' objects>",
                                   "<method 'commit' of 'sqlite3.Connection' objects>")
        for caller, (n, _pc, t, _ct) in v[4].items()
    ]  # fmt: skip
    return {"top_tottime": top, "sql_callers": sql}


def _cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) so far of this process (all its threads: the API, the job, the
    client) and of the ingest pool's worker processes: on free cores the job's time is bounded by the
    larger of its own process's share and the workers' (not a wall-clock time: the machine is shared)."""
    times = os.times()
    workers = 0.0
    try:
        from app.items import processes
    except ImportError:
        processes = None  # type: ignore[assignment]
    if processes is not None:
        tick = os.sysconf("SC_CLK_TCK")
        for pool in list(processes._pools.values()):  # the bench reads the pool's private state
            for pid in list(pool.executor._processes):  # type: ignore[attr-defined]
                with open(f"/proc/{pid}/stat") as stat:  # utime, stime: fields 14 and 15
                    fields = stat.read().rsplit(")", 1)[1].split()
                workers += (int(fields[11]) + int(fields[12])) / tick
    return {"process": times.user + times.system, "workers": workers}


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def sst2_texts(n: int) -> tuple[list[str], np.ndarray]:
    """SST-2's training sentences and labels, repeated with a suffix to ``n``."""
    with np.load(SST2) as z:
        texts = bytes(z["text_train_utf8"]).decode("utf-8").split("\n")
        y = z["y_train"].astype(np.int64)
    out, labels = [], []
    for i in range(n):
        copy, j = divmod(i, len(texts))
        out.append(texts[j] if copy == 0 else f"{texts[j]} [{copy + 1}]")
        labels.append(int(y[j]))
    return out, np.array(labels)


def _best_of_two(
    direct: Callable[[], float], service: Callable[[], dict[str, Any]], n: int
) -> dict[str, Any]:
    first = direct()
    record = service()
    second = direct()
    best = min(first, second)
    record.update(
        direct_s=[round(first, 2), round(second, 2)],
        direct_per_s=round(n / best, 1),
        ratio=round(record["per_s"] / (n / best), 3),
    )
    return record


def bench_texts(args: argparse.Namespace) -> dict[str, Any]:
    from tbal.encoders import make_text_encoder, parse_encoder

    texts, y = sst2_texts(args.n)
    encoder = make_text_encoder(parse_encoder(args.encoder, device=args.device))
    encoder.encode(texts[:8])  # the model loaded outside the timing

    def direct() -> float:
        start = time.perf_counter()
        encoder.encode(texts)
        return time.perf_counter() - start

    def direct_in_a_thread() -> float:
        # as the service's job runs it: torch's OpenMP team of a new thread is not the main thread's
        # (on this loaded 2-core machine the main thread's encode was 1.6-1.8x slower)
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(direct).result()

    def service() -> dict[str, Any]:
        with _service(args) as api:
            pid = api.project(
                classes=["negative", "positive"], data_kind="text", settings={"encoder": args.encoder}
            )
            api.warm_up_texts(pid)
            return api.upload_texts(pid, texts, y)

    main_thread = direct()
    pool = _warm_pool(args)
    record = _best_of_two(direct_in_a_thread, service, args.n)
    record["direct_main_thread_per_s"] = round(args.n / main_thread, 1)
    return {"n": args.n, "encoder": args.encoder, **pool, **record}


def bench_images(args: argparse.Namespace) -> dict[str, Any]:
    from PIL import Image

    from tbal.encoders.images import decode_image

    with np.load(CIFAR) as z:
        X = z["X"][: args.n]
        y = z["y"][: args.n].astype(np.int64)
    files = []
    for x in X:
        out = io.BytesIO()
        image = Image.fromarray(x)
        if args.side:  # photo-like files: upscaled JPEGs that the service scales back to 32×32
            image.resize((args.side, args.side), Image.Resampling.BICUBIC).save(
                out, format="JPEG", quality=90
            )
        else:
            image.save(out, format="PNG")
        files.append(out.getvalue())
    shape = tuple(X.shape[1:])

    def direct() -> float:
        start = time.perf_counter()
        for data in files:
            decode_image(data, shape)
        return time.perf_counter() - start

    def service() -> dict[str, Any]:
        with _service(args) as api:
            pid = api.project(classes=[str(c) for c in range(10)], data_kind="image", input_shape=list(shape))
            return api.upload_images(pid, files, y)

    pool = _warm_pool(args)
    return {
        "n": args.n,
        "side": args.side or 32,
        "file_bytes_mean": int(np.mean([len(f) for f in files])),
        **pool,
        **_best_of_two(direct, service, args.n),
    }


def bench_project(args: argparse.Namespace) -> dict[str, Any]:
    texts, y = sst2_texts(args.n)
    pool = _warm_pool(args)
    start = time.perf_counter()
    with _service(args) as api:
        pid = api.project(
            classes=["negative", "positive"],
            data_kind="text",
            settings={"encoder": args.encoder, "preset": "text-paper"},
        )
        api.warm_up_texts(pid)
        ingest = api.upload_texts(pid, texts, y)
        rounds = api.drive(pid)
    last = rounds[-1] if rounds else {}
    return {
        "n": args.n,
        "encoder": args.encoder,
        **pool,
        "ingest": ingest,
        "rounds": len(rounds),
        "rounds_s": round(sum(r["seconds"] for r in rounds), 1),
        "coverage": last.get("coverage_total"),
        "true_error": last.get("true_error"),
        "per_round": rounds,
        "total_s": round(time.perf_counter() - start, 1),
    }


class Service:
    """The API in process, with a key; what the benchmark does through it."""

    def __init__(self, http: Any, key: str) -> None:
        self.http = http
        self.headers = {"Authorization": f"Bearer {key}"}

    def project(self, **body: Any) -> int:
        answer = self.http.post(
            f"{API}/projects", json={"name": f"b{time.monotonic_ns()}", **body}, headers=self.headers
        )
        answer.raise_for_status()
        return int(answer.json()["id"])

    def warm_up_texts(self, pid: int) -> None:
        """One text through the request path: the encoder is loaded (once per process) before the timing."""
        body = {"items": [{"external_id": "warm-up", "text": "warm up"}]}
        self.http.post(
            f"{API}/projects/{pid}/items/texts", json=body, headers=self.headers
        ).raise_for_status()

    def upload_texts(self, pid: int, texts: list[str], y: np.ndarray) -> dict[str, Any]:
        rows = (
            json.dumps({"id": f"s{i}", "text": t, "label": int(v)})
            for i, (t, v) in enumerate(zip(texts, y, strict=True))
        )
        body = "\n".join(rows).encode("utf-8")
        params = {"format": "jsonl", "id_column": "id", "label_column": "label", "background": "true"}
        return self._job(
            pid, f"{API}/projects/{pid}/items/texts/upload", len(texts), params=params, content=body
        )

    def upload_images(self, pid: int, files: list[bytes], y: np.ndarray) -> dict[str, Any]:
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:
            for i, (data, label) in enumerate(zip(files, y, strict=True)):
                suffix = "png" if data.startswith(PNG_MAGIC) else "jpg"
                z.writestr(f"{int(label)}/{i}.{suffix}", data)
        params = {"labels_from_folders": "true", "background": "true"}
        return self._job(
            pid, f"{API}/projects/{pid}/items/images", len(files), params=params, content=archive.getvalue()
        )

    def _job(self, pid: int, path: str, n: int, **kwargs: Any) -> dict[str, Any]:
        """POST an upload, wait for its job; the service's time ends at the job's own ``finished_at``, so
        that the polls can be rare (each GET costs ~7 ms of CPU here, which the job would share)."""
        cpu_start = _cpu_seconds()
        wall_start, start = time.time(), time.perf_counter()
        answer = self.http.post(
            path, headers={**self.headers, "Content-Type": "application/octet-stream"}, **kwargs
        )
        assert answer.status_code == 202, answer.text
        stored = time.perf_counter() - start
        cpu_stored = _cpu_seconds()
        while True:
            time.sleep(POLL_S)
            got = self.http.get(f"{API}/projects/{pid}/jobs/{answer.json()['id']}", headers=self.headers)
            if got.status_code != 200:  # say it, and ask again (a busy SQLite file answers 503)
                print(f"GET job: {got.status_code} {got.text[:300]}", flush=True)
                continue
            job = got.json()
            if job["status"] in ("succeeded", "failed"):
                break
        elapsed = datetime.fromisoformat(job["finished_at"]).timestamp() - wall_start
        assert job["status"] == "succeeded" and job["inserted"] == n, job
        cpu_end = _cpu_seconds()
        return {
            "accepted_s": round(stored, 2),
            "service_s": round(elapsed, 2),
            "per_s": round(n / elapsed, 1),
            "cpu_s": {  # the upload (client and server) until the 202; then the job (and the polls)
                "upload": round(cpu_stored["process"] - cpu_start["process"], 2),
                "job_process": round(cpu_end["process"] - cpu_stored["process"], 2),
                "job_workers": round(cpu_end["workers"] - cpu_stored["workers"], 2),
            },
        }

    def drive(self, pid: int) -> list[dict[str, Any]]:
        """Rounds until the budget is spent, human labels answered from the ground truth."""
        rounds: list[dict[str, Any]] = []
        while True:
            self.http.post(f"{API}/projects/{pid}/simulate", headers=self.headers).raise_for_status()
            start = time.perf_counter()
            started = self.http.post(f"{API}/projects/{pid}/rounds", headers=self.headers)
            if started.status_code == 409:
                return rounds
            started.raise_for_status()
            while True:
                r = self.http.get(f"{API}/rounds/{started.json()['id']}", headers=self.headers).json()
                if r["status"] in ("succeeded", "failed"):
                    break
                time.sleep(0.1)
            assert r["status"] == "succeeded", r
            m = r["metrics"] or {}
            rounds.append({
                "index": r["index"],
                "seconds": round(time.perf_counter() - start, 1),
                "coverage_total": m.get("coverage_total"),
                "auto_labeled": m.get("auto_labeled"),
                "true_error": (m.get("true_error") or {}).get("total"),
            })  # fmt: skip


@contextmanager
def _service(args: argparse.Namespace) -> Iterator[Service]:
    from fastapi.testclient import TestClient

    from app.db.migrate import upgrade
    from app.db.session import make_engine, make_session_factory
    from app.main import create_app
    from app.projects.keys_service import create_key
    from app.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=args.database_url or f"sqlite:///{tmp}/tbal.sqlite",
            artifacts_dir=Path(tmp) / "artifacts",
            upload_dir=Path(tmp) / "uploads",
            train_device=args.device,
            ingest_job_batch=args.batch,
            ingest_processes=args.processes,  # ignored by code without it
            max_request_bytes=4 << 30,
        )
        upgrade(settings)
        engine = make_engine(settings)
        _key, secret = create_key(make_session_factory(engine), "bench")
        engine.dispose()
        with TestClient(create_app(settings)) as http:
            yield Service(http, secret)


if __name__ == "__main__":
    main()
