"""The ingest jobs' pool of worker processes (app.items.processes): a job decoded / encoded there stores
byte for byte what the job's own thread stores (ids, order, features or pixels, ground truth, texts) and
reports the same per-item errors; a pool that cannot start falls back to the thread with a log line; a
worker that dies is replaced once, then the batch fails.

These tests start a real pool (2 workers: ``forkserver``, ~1 s once per test process); the other tests
use whatever ``TBAL_INGEST_PROCESSES`` says (the default pool, or 0 for the job's thread)."""

from __future__ import annotations

import io
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app.errors import Invalid
from app.items import jobs_repository as jobs_repo
from app.items import processes
from app.items.jobs_chunks import Staged
from app.items.jobs_run import execute_job
from app.items.raw.images import decode_files
from app.items.raw.texts import encode_items
from app.settings import Settings
from tbal.encoders import make_text_encoder
from tests.app.conftest import text_project, toy_sentences
from tests.app.items import pool_work

MakeProject = Callable[..., dict[str, Any]]
POOL = 2


@pytest.fixture
def fresh_pool() -> Iterator[None]:
    """No pool left over from another test, and none refused (a test that breaks the start)."""
    processes.shutdown()
    yield
    processes.shutdown()


def _png(x: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(x).save(out, format="PNG")
    return out.getvalue()


def _image_files(n: int, bad: Sequence[int]) -> list[bytes]:
    rng = np.random.default_rng(1)
    files = [_png(x) for x in rng.integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8)]
    for i in bad:
        files[i] = b"\x89PNG\r\n\x1a\n truncated" if i % 2 else b"not an image at all"
    return files


def test_slices_cover_every_item_once_in_order() -> None:
    for n in range(0, 50):
        for parts in (1, 2, 3, 4):
            for min_items in (1, 8):
                got = processes.slices(n, parts, min_items)
                assert [i for s in got for i in range(n)[s]] == list(range(n))
                assert len(got) <= max(1, parts) and (n == 0) == (got == [])
                assert len(got) == 1 or all(s.stop - s.start >= min_items for s in got)


def test_the_pool_size_setting() -> None:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    assert processes.pool_size(None) == min(cpus, 4)
    assert [processes.pool_size(n) for n in (0, 1, 3)] == [0, 1, 3]
    assert processes.get_pool(0) is None and processes.get_pool(1) is None
    assert processes.map_slices(1, pool_work.pid_of, [1, 2, 3]) is None  # the caller's thread


def test_decoding_in_the_pool_gives_the_threads_arrays_and_problems(fresh_pool: None) -> None:
    files = _image_files(150, bad=[3, 70, 149])
    alone, alone_problems = decode_files(files, (8, 8, 3), processes=0)
    pooled, pooled_problems = decode_files(files, (8, 8, 3), processes=POOL)
    assert processes.get_pool(POOL) is not None  # it ran in the pool, not the fallback
    assert pooled.tobytes() == alone.tobytes() and pooled.dtype == np.uint8
    assert pooled_problems == alone_problems
    assert [i for i, p in enumerate(pooled_problems) if p] == [3, 70, 149]
    pids = processes.map_slices(POOL, pool_work.pid_of, list(range(100)))
    assert pids is not None and os.getpid() not in {p for part in pids for p in part}


def test_hashing_in_the_pool_gives_the_threads_features(fresh_pool: None) -> None:
    texts, _labels = toy_sentences(301)
    encoder = make_text_encoder("hashing:64")
    alone, alone_problems = encode_items(texts, encoder, (64,), processes=0)
    pooled, pooled_problems = encode_items(texts, encoder, (64,), processes=POOL)
    assert pooled.tobytes() == alone.tobytes() and pooled.shape == (301, 64)
    assert pooled_problems == alone_problems == [None] * 301
    with pytest.raises(Invalid) as wrong:  # a wrong feature size fails the job, as on the thread
        encode_items(texts, encoder, (32,), processes=POOL)
    assert wrong.value.field == "settings.encoder" and "project stores (32,)" in wrong.value.reason


def test_a_refused_batch_is_encoded_one_by_one_on_the_thread_and_in_the_pool(fresh_pool: None) -> None:
    texts = ["good", "bad one", "fine", "bad two", *(f"text {i}" for i in range(70)), "bad three"]
    X, problems = encode_items(texts, pool_work.Picky(), (4,), processes=POOL)  # a model: on the thread
    refused = [i for i, p in enumerate(problems) if p is not None]
    assert refused == [1, 3, 74] and problems[1] == "cannot encode a bad text"
    assert X.shape == (len(texts) - 3, 4)
    parts = processes.map_slices(POOL, processes.encode_rows, texts, pool_work.Picky(), (4,))
    assert parts is not None and len(parts) == POOL
    pooled, pooled_problems = processes.joined(parts)
    assert pooled_problems == problems and pooled.tobytes() == X.tobytes()


def _stage(factory: sessionmaker[Session], pid: int, kind: str, rows: list[Staged]) -> int:
    with factory() as session:
        job = jobs_repo.add(session, pid, kind, len(rows))
        jobs_repo.stage(session, job.id, iter(rows), 3)
        session.commit()
        return job.id


def _stored(factory: sessionmaker[Session], pid: int, job_id: int) -> dict[str, Any]:
    """What a job stored and reported, without the ids the database chose."""
    with factory() as session:
        items = session.execute(
            text(
                "SELECT i.external_id, i.data, g.label, t.text FROM items i "
                "LEFT JOIN ground_truth g ON g.item_id = i.id "
                "LEFT JOIN item_texts t ON t.project_id = i.project_id AND t.external_id = i.external_id "
                "WHERE i.project_id = :p ORDER BY i.id"
            ),
            {"p": pid},
        ).all()
        job = jobs_repo.get(session, job_id)
        assert job is not None
        counts = (job.status, job.done, job.inserted, job.skipped, job.n_errors, job.ground_truth_added)
        return {
            "items": [(r[0], bytes(r[1]), r[2], r[3]) for r in items],
            "job": counts,
            "errors": job.errors,
        }


def _run_both(
    factory: sessionmaker[Session], settings: Settings, make: Callable[[], int], kind: str, rows: list[Staged]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same staged job in two new projects: on the job's thread, then in the pool (twice: the second
    run of a job stores nothing more)."""
    results = []
    for size in (0, POOL):
        pid = make()
        job_id = _stage(factory, pid, kind, rows)
        run_settings = settings.model_copy(update={"ingest_processes": size, "ingest_job_batch": 7})
        assert execute_job(job_id, factory, run_settings) == "succeeded"
        again = _stage(factory, pid, kind, rows)  # a retried upload: everything known
        assert execute_job(again, factory, run_settings) == "succeeded"
        results.append(_stored(factory, pid, job_id) | {"again": _stored(factory, pid, again)["job"]})
    return results[0], results[1]


def test_a_text_job_in_the_pool_stores_byte_for_byte_what_the_thread_does(
    make_project: MakeProject, session_factory: sessionmaker[Session], settings: Settings, fresh_pool: None
) -> None:
    texts, labels = toy_sentences(60)
    rows = [Staged(i, f"t{i}", t, None, y) for i, (t, y) in enumerate(zip(texts, labels, strict=True))]
    rows[5] = rows[5]._replace(label="maybe")  # an unknown class
    rows[17] = rows[17]._replace(text="")  # an empty text
    rows[40] = rows[40]._replace(external_id="x" * 300)  # an id too long

    thread, pool = _run_both(
        session_factory, settings, lambda: int(text_project(make_project, "hashing:64")["id"]), "texts", rows
    )
    assert processes.get_pool(POOL) is not None
    assert pool == thread
    assert thread["job"] == ("succeeded", 60, 57, 0, 3, 57)
    assert [e["index"] for e in thread["errors"]] == [5, 17, 40]
    assert [i[0] for i in thread["items"]] == [f"t{i}" for i in range(60) if i not in (5, 17, 40)]
    assert thread["again"] == ("succeeded", 60, 0, 57, 3, 0)


def test_an_image_job_in_the_pool_stores_byte_for_byte_what_the_thread_does(
    make_project: MakeProject, session_factory: sessionmaker[Session], settings: Settings, fresh_pool: None
) -> None:
    files = _image_files(40, bad=[0, 9, 39])
    rows = [Staged(i, f"{'cat' if i % 2 else 'dog'}/{i}.png", None, f, i % 2) for i, f in enumerate(files)]

    def project() -> int:
        return int(make_project(classes=["dog", "cat"], data_kind="image", input_shape=[8, 8, 3])["id"])

    thread, pool = _run_both(session_factory, settings, project, "images", rows)
    assert pool == thread
    assert thread["job"] == ("succeeded", 40, 37, 0, 3, 37)
    assert [(e["index"], e["item"]) for e in thread["errors"]] == [
        (0, "dog/0.png"),
        (9, "cat/9.png"),
        (39, "cat/39.png"),
    ]
    assert all(e["reason"] for e in thread["errors"])


def test_a_pool_that_cannot_start_leaves_the_work_to_the_jobs_thread(
    make_project: MakeProject,
    session_factory: sessionmaker[Session],
    settings: Settings,
    fresh_pool: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def cannot(size: int) -> Any:
        raise OSError("no processes here")

    monkeypatch.setattr(processes, "_start", cannot)
    texts, labels = toy_sentences(20)
    rows = [Staged(i, f"t{i}", t, None, y) for i, (t, y) in enumerate(zip(texts, labels, strict=True))]
    pid = int(text_project(make_project, "hashing:64")["id"])
    with caplog.at_level(logging.WARNING, logger="app.items.processes"):
        job_id = _stage(session_factory, pid, "texts", rows)
        run = settings.model_copy(update={"ingest_processes": POOL, "ingest_job_batch": 4})
        assert execute_job(job_id, session_factory, run) == "succeeded"
    assert _stored(session_factory, pid, job_id)["job"] == ("succeeded", 20, 20, 0, 0, 20)
    warnings = [r.getMessage() for r in caplog.records if "could not start" in r.getMessage()]
    assert len(warnings) == 1 and "no processes here" in warnings[0]  # said once, not every batch
    assert processes.get_pool(POOL) is None


def test_a_worker_that_dies_is_replaced_once_then_the_batch_fails(tmp_path: Path, fresh_pool: None) -> None:
    doubled = processes.map_slices(POOL, pool_work.dies_once, list(range(80)), pool_work.marker_in(tmp_path))
    assert doubled is not None and [x for part in doubled for x in part] == [2 * i for i in range(80)]
    with pytest.raises(processes.WorkerDied):
        processes.map_slices(POOL, pool_work.always_dies, list(range(80)))
    with pytest.raises(ValueError, match="refused 40 items"):  # an error of the work itself is raised as is
        processes.map_slices(POOL, pool_work.refuses, list(range(80)))
    again = processes.map_slices(POOL, pool_work.pid_of, list(range(80)))  # a new pool after that
    assert again is not None and len({p for part in again for p in part}) >= 1


def test_a_celery_prefork_child_may_start_the_pool(fresh_pool: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a prefork child, billiard is multiprocessing's current process: daemonic, with billiard's key
    type, and a pool cannot start; the worker's ``worker_process_init`` handler lets it."""
    import billiard.process

    from worker.celery_app import _allow_ingest_processes

    config = multiprocessing.current_process()._config  # type: ignore[attr-defined]
    monkeypatch.setitem(config, "daemon", True)
    monkeypatch.setitem(config, "authkey", billiard.process.AuthenticationString(bytes(config["authkey"])))
    assert processes.get_pool(POOL) is None  # refused, logged: the job's thread would do the work
    processes.shutdown()  # forget the refusal
    _allow_ingest_processes()
    pids = processes.map_slices(POOL, pool_work.pid_of, list(range(64)))
    assert pids is not None and os.getpid() not in {p for part in pids for p in part}
