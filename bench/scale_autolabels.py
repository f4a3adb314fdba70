"""Write N auto-labels with the round's writer (``app.rounds.auto_labels_repository.write``: skips items with
a human label, one transaction) on PostgreSQL, beside a plain binary COPY of the same rows into the
same table, and beside the staged ``INSERT ... SELECT ... ON CONFLICT`` path (SQLite's path, and the
PostgreSQL path before issue 6).

    .venv/bin/python bench/scale_autolabels.py --n 1000000

Order: COPY, writer, staged path, COPY again, then the optional COPYs (``--without-fk``,
``--with-0003-fks``); the table is emptied (TRUNCATE) between runs. The items
(N × 384 float32, as in a real project: the foreign-key checks lock item rows, so their size matters)
and 1,000 human labels are set up first.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

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
    save,
    scratch_dir,
)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384, help="feature size of the items (their row size)")
    parser.add_argument("--pg", default=os.environ.get("TBAL_BENCH_PG", DEFAULT_PG))
    parser.add_argument("--tmp", default=None)
    parser.add_argument("--no-staged", action="store_true", help="skip the (slow) staged path")
    parser.add_argument(
        "--without-fk",
        action="store_true",
        help="also time the plain COPY with the table's triggers (its foreign-key checks) disabled, "
        "in the throw-away schema only: what the checks cost",
    )
    parser.add_argument(
        "--with-0003-fks",
        action="store_true",
        help="also time the plain COPY with the foreign keys to items and rounds that migration 0004 "
        "dropped put back (the schema before 0004), in the throw-away schema only",
    )
    parser.add_argument("--out", default="scale-autolabels")
    args = parser.parse_args()
    record: dict[str, Any] = {"n": args.n, "dim": args.dim, "before": conditions()}
    with scratch_dir(args.tmp) as tmp, pg_schema(args.pg) as url:
        record.update(_run(args, url, Path(tmp)))
    record["after"] = conditions()
    path = save(args.out, record)
    for i, run in enumerate(record["baseline_copy"]):
        print(
            f"plain COPY #{i + 1}: {run['rows_per_s']:,.0f} rows/s, "
            f"PostgreSQL CPU {run['server_cpu_s']:.1f} s"
        )
    for key, what in (("copy_without_fk", "without FK checks"), ("copy_with_0003_fks", "with 0003's FKs")):
        if key in record:
            run = record[key]
            print(
                f"plain COPY {what}: {run['rows_per_s']:,.0f} rows/s, "
                f"PostgreSQL CPU {run['server_cpu_s']:.1f} s"
            )
    for name in ("writer", "staged"):
        if name in record:
            run = record[name]
            print(
                f"{name}: {run['rows_per_s']:,.0f} rows/s, wall {run['wall_s']:.1f} s, PostgreSQL CPU "
                f"{run['server_cpu_s']:.1f} s, client CPU {run['client_cpu_s']:.1f} s, "
                f"ratio {run['ratio_rows_per_s']:.2f}, peak RSS +{run['peak_rss_delta_mb']:.0f} MiB"
            )
    print(f"saved {path}")
    return 0


def _run(args: argparse.Namespace, url: str, folder: Path) -> dict[str, Any]:
    from sqlalchemy import select, text

    from app.db.base import utcnow
    from app.db.bulk import COPY_SIGNATURE, COPY_TRAILER, encode_copy_rows, pg_timestamp
    from app.db.models import Item, Project, Round
    from app.db.session import make_engine, make_session_factory
    from app.rounds import auto_labels_repository as auto_repo
    from app.settings import Settings

    engine = make_engine(Settings(database_url=url))
    factory = make_session_factory(engine)
    conninfo = libpq_url(url)
    n = args.n
    with factory() as session:
        project = Project(
            name="autolabels", classes=["a", "b"], data_kind="features", input_shape=[2], settings={}
        )
        session.add(project)
        session.flush()
        pid = project.id
        round_ = Round(project_id=pid, index=0, status="running")
        session.add(round_)
        session.commit()
        rid = round_.id
    npy = folder / "X.npy"
    np.save(npy, np.zeros((n, args.dim), dtype=np.float32))
    encoded_items_file(folder / "items.copy", npy, pid, "x")
    copy_file(
        conninfo, "items", ("project_id", "data", "role", "created_at", "external_id"), folder / "items.copy"
    )
    npy.unlink()
    (folder / "items.copy").unlink()
    with engine.connect() as conn:  # a settled table, as autovacuum leaves it after a bulk insert
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE items"))
    with factory() as session:
        item_ids = np.fromiter(
            session.scalars(select(Item.id).where(Item.project_id == pid).order_by(Item.id)), np.int64
        )
        rng = np.random.default_rng(0)
        human = np.sort(rng.choice(item_ids, size=min(1000, n // 10), replace=False))
        session.execute(
            text(
                "INSERT INTO human_labels (project_id, item_id, label, source, created_at, updated_at) "
                "SELECT :pid, unnest(CAST(:ids AS int8[])), 0, 'api', now(), now()"
            ),
            {"pid": pid, "ids": human.tolist()},
        )
        session.commit()
    labels = rng.integers(0, 2, size=n)
    confidences = rng.uniform(0.5, 1.0, size=n)
    keep = ~np.isin(item_ids, human)
    now = utcnow()
    copy_path = folder / "auto.copy"
    with open(copy_path, "wb") as copy_out:
        copy_out.write(COPY_SIGNATURE)
        rows = np.flatnonzero(keep)
        for start in range(0, rows.size, 100_000):
            part = rows[start : start + 100_000]
            copy_out.write(
                encode_copy_rows(
                    part.size,
                    [
                        (">i8", pid),
                        (">i8", item_ids[part]),
                        (">i8", rid),
                        (">i4", labels[part]),
                        (">f8", confidences[part]),
                        (">i8", pg_timestamp(now)),
                    ],
                )
            )
        copy_out.write(COPY_TRAILER)
    expected = int(keep.sum())

    def truncate() -> None:
        with factory() as session:
            session.execute(text("TRUNCATE auto_labels"))
            session.commit()

    def baseline() -> dict[str, Any]:
        truncate()
        run: dict[str, Any] = copy_file(conninfo, "auto_labels", auto_repo.COPY_COLUMNS, copy_path)
        run["rows_per_s"] = expected / run["wall_s"]
        run["loadavg"] = os.getloadavg()[0]
        return run

    def writer(staged: bool) -> dict[str, Any]:
        truncate()
        real = auto_repo.dialect
        if staged:  # the staged INSERT ... SELECT path, as SQLite (and PostgreSQL before) take it
            auto_repo.dialect = lambda session: "sqlite"  # type: ignore[assignment]
        try:
            with factory() as session, RssSampler() as sampler:
                backend = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
                rss0, _ = sampler.reset()
                cpu0, bcpu0 = time.process_time(), proc_cpu_s(backend)
                start = time.perf_counter()
                inserted = auto_repo.write(session, pid, rid, item_ids, labels, confidences, now)
                session.commit()
                wall = time.perf_counter() - start
                bcpu = proc_cpu_s(backend) - bcpu0
        finally:
            auto_repo.dialect = real  # type: ignore[assignment]
        if inserted != expected:
            raise SystemExit(f"expected {expected} auto-labels written, got {inserted}")
        return {
            "wall_s": wall,
            "rows_per_s": expected / wall,
            "client_cpu_s": time.process_time() - cpu0,
            "server_cpu_s": bcpu,
            "peak_rss_delta_mb": sampler.peak_mb - rss0,
            "loadavg": os.getloadavg()[0],
        }

    out: dict[str, Any] = {"rows": expected, "human_labels": int(human.size), "baseline_copy": [baseline()]}
    out["writer"] = writer(staged=False)
    if not args.no_staged:
        out["staged"] = writer(staged=True)
    out["baseline_copy"].append(baseline())
    if args.without_fk:
        out["copy_without_fk"] = _altered(factory, WITHOUT_FK, baseline)
    if args.with_0003_fks:
        out["copy_with_0003_fks"] = _altered(factory, WITH_0003_FKS, baseline)
    truncate()
    engine.dispose()
    copy_rate = float(np.mean([r["rows_per_s"] for r in out["baseline_copy"]]))
    copy_cpu = float(np.mean([r["server_cpu_s"] for r in out["baseline_copy"]]))
    for name in ("writer", "staged"):
        if name in out:
            out[name]["ratio_rows_per_s"] = out[name]["rows_per_s"] / copy_rate
            out[name]["ratio_server_cpu"] = out[name]["server_cpu_s"] / copy_cpu
    return out


WITHOUT_FK = (
    ["ALTER TABLE auto_labels DISABLE TRIGGER ALL"],
    ["ALTER TABLE auto_labels ENABLE TRIGGER ALL"],
)
"""(before, after) statements: no foreign-key check at all (its triggers off)."""

WITH_0003_FKS = (
    [
        f"ALTER TABLE auto_labels ADD CONSTRAINT fk_auto_labels_{column}_{table} "
        f"FOREIGN KEY ({column}) REFERENCES {table} (id) ON DELETE CASCADE"
        for column, table in (("item_id", "items"), ("round_id", "rounds"))
    ],
    [
        f"ALTER TABLE auto_labels DROP CONSTRAINT fk_auto_labels_{c}"
        for c in ("item_id_items", "round_id_rounds")
    ],
)
"""(before, after) statements: the two foreign keys of revision 0003 that 0004 dropped, back for one run."""


def _altered(
    factory: Callable[[], Session], statements: tuple[list[str], list[str]], run: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """``run()`` with ``auto_labels`` altered by the first statements, undone by the second afterwards."""
    from sqlalchemy import text

    before, after = statements
    with factory() as session:
        for statement in before:
            session.execute(text(statement))
        session.commit()
    try:
        return run()
    finally:
        with factory() as session:
            for statement in after:
                session.execute(text(statement))
            session.commit()


if __name__ == "__main__":
    raise SystemExit(main())
