"""One whole round on pools of growing size (default 10k, 100k, 1M items × 384 float32) on PostgreSQL:
each stage's time and the worker's memory, the feature load beside reading the same bytes from a local
file, and the pool scoring rate.

    OMP_NUM_THREADS=1 .venv/bin/python bench/scale_round.py --sizes 10000 100000 1000000

For each size: a project with N items (ingested by the service's binary path), 500 human training and
1,500 human validation labels (the true classes of Gaussian blobs in 384 dimensions, 10 classes), the
default MLP (384-1000-500-30-10) trained for a few epochs; then ``execute_round`` runs in this process
(the worker's code path; one torch thread). Timings come from the round's own record, and from
wrappers put around the library's training (``train_uncertainty_model``) and ``predict`` and the
repository's pool load, so that classifier training can be left out of the round's time and the load
compared with a file read. Resident memory is sampled every 20 ms and split by stage. Everything
happens in a throw-away schema of the ``test`` database.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.scale_common import (
    DEFAULT_PG,
    RssSampler,
    conditions,
    pg_schema,
    proc_cpu_s,
    proc_rss_mb,
    save,
    scratch_dir,
    write_features,
)

N_TRAIN, N_VAL = 500, 1500


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--confidence", default="softmax")
    parser.add_argument("--pg", default=os.environ.get("TBAL_BENCH_PG", DEFAULT_PG))
    parser.add_argument("--tmp", default=None)
    parser.add_argument("--cold", action="store_true", help="no VACUUM ANALYZE between ingest and round")
    parser.add_argument("--out", default="scale-round")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    record: dict[str, Any] = {
        "dim": args.dim,
        "confidence": args.confidence,
        "before": conditions(),
        "runs": [],
    }
    with scratch_dir(args.tmp) as tmp, pg_schema(args.pg) as url:
        folder = Path(tmp)
        npy = folder / "X.npy"
        write_features(npy, max(args.sizes), args.dim)
        for n in args.sizes:
            run = _one_size(args, url, folder, npy, n)
            record["runs"].append(run)
            _print(run)
            save(args.out, record)
    record["after"] = conditions()
    print(f"saved {save(args.out, record)}")
    return 0


class _Clock:
    """Wraps functions to add up the wall time spent in them."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.server_cpu: dict[str, float] = {}
        self.calls: dict[str, list[int]] = {}

    def wrap(
        self, name: str, fn: Callable[..., Any], size: Callable[..., int] | None = None
    ) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
                if size is not None:
                    self.calls.setdefault(name, []).append(size(*args, **kwargs))

        return timed

    def wrap_db(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Like :meth:`wrap` for a function whose first argument is a session: also adds up the CPU
        seconds of this process and of the PostgreSQL backend serving the session."""

        def timed(session: Any, *args: Any, **kwargs: Any) -> Any:
            backend = session.connection().connection.driver_connection.info.backend_pid
            cpu0, server0 = time.process_time(), proc_cpu_s(backend)
            start = time.perf_counter()
            try:
                return fn(session, *args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
                self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - cpu0
                self.server_cpu[name] = self.server_cpu.get(name, 0.0) + proc_cpu_s(backend) - server0

        return timed


def _one_size(args: argparse.Namespace, url: str, folder: Path, npy: Path, n: int) -> dict[str, Any]:
    from sqlalchemy import select, text

    import tbal.loop
    from app.db.models import Item, Project, Round
    from app.db.session import make_engine, make_session_factory
    from app.items import repository as items_repo
    from app.items import service as ingest
    from app.rounds import auto_labels_repository as auto_repo
    from app.rounds import liveness
    from app.rounds.run import execute_round
    from app.settings import Settings

    settings = Settings(
        database_url=url,
        artifacts_dir=folder / "artifacts",
        torch_threads=1,
        train_device="cpu",
        progress_interval_s=1.0,
        round_time_limit_s=3600,
    )
    engine = make_engine(settings)
    factory = make_session_factory(engine)
    X = np.load(npy, mmap_mode="r")
    y = np.load(f"{npy}.labels.npy", mmap_mode="r")[:n]
    part = folder / f"X{n}.npy"
    np.save(part, X[:n])
    with factory() as session:
        project = Project(
            name=f"round-{n}",
            classes=[f"c{i}" for i in range(10)],
            data_kind="features",
            input_shape=[args.dim],
            settings={"model": "mlp", "epochs": args.epochs, "confidence": args.confidence},
        )
        session.add(project)
        session.commit()
        start = time.perf_counter()
        ingest.ingest_file(session, project, part, id_prefix="x", chunk_rows=settings.ingest_chunk_rows)
        ingest_s = time.perf_counter() - start
        part.unlink()
        ids = np.fromiter(
            session.scalars(select(Item.id).where(Item.project_id == project.id).order_by(Item.id)), np.int64
        )
        rng = np.random.default_rng(n)
        chosen = rng.choice(n, size=N_TRAIN + N_VAL, replace=False)
        for role, rows in (("train", chosen[:N_TRAIN]), ("validation", chosen[N_TRAIN:])):
            session.execute(
                text("UPDATE items SET role = :role WHERE id = ANY(CAST(:ids AS int8[]))"),
                {"role": role, "ids": ids[rows].tolist()},
            )
            session.execute(
                text(
                    "INSERT INTO human_labels (project_id, item_id, label, source, created_at, updated_at) "
                    "SELECT :pid, t.id, t.label, 'api', now(), now() "
                    "FROM unnest(CAST(:ids AS int8[]), CAST(:labels AS int4[])) AS t(id, label)"
                ),
                {"pid": project.id, "ids": ids[rows].tolist(), "labels": y[rows].tolist()},
            )
        round_ = Round(project_id=project.id, index=0, status="queued")
        session.add(round_)
        session.commit()
        round_id = round_.id
    # a settled table, as autovacuum leaves it after a bulk insert: without this the first read sets
    # the hint bits of every freshly copied row and writes every page back (measured apart, see --cold)
    if not args.cold:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE items"))

    clock = _Clock()
    stages: list[tuple[float, str]] = []
    originals_write = auto_repo.write
    originals = (
        tbal.loop.train_uncertainty_model,
        tbal.loop.predict,
        items_repo.load_id_data,
        liveness.Progress.report,
    )
    # the loop trains through train_uncertainty_model (train_classifier for a plain model)
    tbal.loop.train_uncertainty_model = clock.wrap("train_classifier", originals[0])  # type: ignore[assignment]
    tbal.loop.predict = clock.wrap("predict", originals[1], lambda model, X, **kw: len(X))  # type: ignore[assignment]
    items_repo.load_id_data = clock.wrap_db("pool_fetch", originals[2])  # type: ignore[assignment]
    auto_repo.write = clock.wrap_db("auto_label_write", originals_write)  # type: ignore[assignment]

    def report(self: Any, stage: str, fraction: float) -> None:
        if not stages or stages[-1][1] != stage:
            stages.append((time.perf_counter(), stage))
        originals[3](self, stage, fraction)

    liveness.Progress.report = report  # type: ignore[assignment]
    samples: list[tuple[float, float]] = []
    try:
        with RssSampler(interval=0.02) as sampler:
            rss0, anon0 = sampler.reset()
            sampler_samples = _Recorder(samples)
            sampler_samples.start()
            cpu0 = time.process_time()
            start = time.perf_counter()
            stages.append((start, "load"))
            execute_round(round_id, factory, settings)
            wall = time.perf_counter() - start
            cpu = time.process_time() - cpu0
            sampler_samples.stop()
    finally:
        (
            tbal.loop.train_uncertainty_model,
            tbal.loop.predict,
            items_repo.load_id_data,
            liveness.Progress.report,
        ) = originals  # type: ignore[assignment]
        auto_repo.write = originals_write  # type: ignore[assignment]
    with factory() as session:
        done = session.get(Round, round_id)
        assert done is not None
        if done.status != "succeeded":
            raise SystemExit(f"round failed: {done.error}")
        metrics = dict(done.metrics or {})
    stages.append((start + wall, "end"))
    matrix_mb = n * args.dim * 4 / 2**20
    stage_peaks = _stage_peaks(samples, stages, rss0)
    # the same bytes as the pool fetch, read from a local file (written now, so in the page cache as
    # PostgreSQL's pages are after the round: both reads are warm)
    pool_n = int(metrics["pool_size"])
    local = folder / "pool.bin"
    np.asarray(X[:pool_n], dtype="<f4").tofile(local)
    start, cpu0 = time.perf_counter(), time.process_time()
    np.fromfile(local, dtype=np.uint8)
    file_s, file_cpu = time.perf_counter() - start, time.process_time() - cpu0
    local.unlink()
    timings = metrics["timings"]
    pool_predict = clock.calls.get("predict", [])
    train_s = clock.seconds.get("train_classifier", 0.0)
    engine.dispose()
    return {
        "n": n,
        "ingest_s": ingest_s,
        "pool_size": pool_n,
        "round_wall_s": wall,
        "round_cpu_s": cpu,
        "round_wall_without_training_s": wall - train_s,
        "train_classifier_s": train_s,
        "predict_s": clock.seconds.get("predict", 0.0),
        "predict_rows": int(sum(pool_predict)),
        "pool_fetch_s": clock.seconds.get("pool_fetch", 0.0),
        "file_read_s": file_s,
        "fetch_vs_file": clock.seconds.get("pool_fetch", 0.0) / file_s if file_s else None,
        "file_read_cpu_s": file_cpu,
        "pool_fetch_cpu_s": clock.cpu.get("pool_fetch", 0.0),
        "pool_fetch_server_cpu_s": clock.server_cpu.get("pool_fetch", 0.0),
        "fetch_vs_file_cpu": (clock.cpu.get("pool_fetch", 0.0) + clock.server_cpu.get("pool_fetch", 0.0))
        / max(file_cpu, 1e-9),
        "auto_label_write_s": clock.seconds.get("auto_label_write", 0.0),
        "auto_label_write_cpu_s": clock.cpu.get("auto_label_write", 0.0),
        "auto_label_write_server_cpu_s": clock.server_cpu.get("auto_label_write", 0.0),
        "round_timings": timings,
        "auto_labeled": metrics.get("auto_labeled"),
        "coverage": metrics.get("coverage"),
        "true_error_round": metrics.get("true_error", {}).get("round"),
        "rss_before_mb": rss0,
        "anon_before_mb": anon0,
        "peak_rss_mb": sampler.peak_mb,
        "peak_anon_mb": sampler.peak_anon_mb,
        "feature_matrix_mb": matrix_mb,
        "peak_copies_of_matrix": (sampler.peak_mb - rss0) / matrix_mb,
        "stage_peak_rss_mb": stage_peaks,
        "stage_copies_of_matrix": {k: (v - rss0) / matrix_mb for k, v in stage_peaks.items()},
        "loadavg": os.getloadavg()[0],
    }


class _Recorder:
    """(time, resident MiB) every 20 ms, to split the peak by stage."""

    def __init__(self, out: list[tuple[float, float]]) -> None:
        import threading

        self.out = out
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        pid = os.getpid()
        while not self._stop.wait(0.02):
            self.out.append((time.perf_counter(), proc_rss_mb(pid)))


def _stage_peaks(
    samples: list[tuple[float, float]], stages: list[tuple[float, str]], floor: float
) -> dict[str, float]:
    peaks: dict[str, float] = {}
    for (begin, stage), (end, _next) in itertools.pairwise(stages):
        inside = [rss for t, rss in samples if begin <= t < end]
        if inside:
            peaks[stage] = max(peaks.get(stage, floor), max(inside))
    return peaks


def _print(run: dict[str, Any]) -> None:
    t = run["round_timings"]
    print(
        f"N={run['n']:,}: round {run['round_wall_s']:.1f} s "
        f"({run['round_wall_without_training_s']:.1f} s without training {run['train_classifier_s']:.1f} s); "
        "stages " + ", ".join(f"{k} {v:.2f}" for k, v in t.items())
    )
    print(
        f"  pool fetch {run['pool_fetch_s']:.2f} s (CPU {run['pool_fetch_cpu_s']:.2f} s here + "
        f"{run['pool_fetch_server_cpu_s']:.2f} s PostgreSQL) vs file read {run['file_read_s']:.2f} s "
        f"(×{run['fetch_vs_file']:.1f} wall, ×{run['fetch_vs_file_cpu']:.1f} CPU)"
    )
    print(
        f"  auto-label write {run['auto_label_write_s']:.2f} s (PostgreSQL CPU "
        f"{run['auto_label_write_server_cpu_s']:.2f} s); predict {run['predict_rows']:,} rows in "
        f"{run['predict_s']:.2f} s; peak RSS {run['peak_rss_mb']:,.0f} MiB "
        f"(+{run['peak_rss_mb'] - run['rss_before_mb']:,.0f}; matrix {run['feature_matrix_mb']:,.0f} MiB; "
        f"×{run['peak_copies_of_matrix']:.2f})"
    )
    print("  stage peaks: " + ", ".join(f"{k} ×{v:.2f}" for k, v in run["stage_copies_of_matrix"].items()))


if __name__ == "__main__":
    raise SystemExit(main())
