"""Ingest jobs on the embedded default (in process; SQLite and PostgreSQL): a large raw upload answers 202
once its raw items are stored, the job encodes / decodes them in batches, bad items become per-item
errors naming them while the rest is stored, a job interrupted in the middle resumes without storing
anything twice, and a small upload still answers 200 as before."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

import app.items.jobs_run as job_run
from app.items import jobs_repository as jobs_repo
from app.items.jobs_chunks import Staged, pack, unpack
from app.items.jobs_run import execute_job
from app.main import create_app
from app.projects.keys_service import create_key
from app.settings import Settings
from tbal.encoders import make_text_encoder
from tbal.encoders.images import decode_image
from tests.app.conftest import Api, stored_features, text_project, toy_sentences

MakeProject = Callable[..., dict[str, Any]]


def _wait_job(api: Api, pid: int, job_id: int, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = api.get(f"/api/v1/projects/{pid}/jobs/{job_id}").json()
        if body["status"] in ("succeeded", "failed"):
            return dict(body)
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def _jsonl(texts: list[str], labels: list[Any], prefix: str = "t") -> bytes:
    rows = [
        {"id": f"{prefix}{i}", "text": t, "label": y}
        for i, (t, y) in enumerate(zip(texts, labels, strict=True))
    ]
    return "\n".join(json.dumps(r) for r in rows).encode()


def _upload(api: Api, pid: int, body: bytes, **params: Any) -> Any:
    query = {"format": "jsonl", "id_column": "id", "label_column": "label", **params}
    return api.post(
        f"/api/v1/projects/{pid}/items/texts/upload",
        params=query,
        content=body,
        headers={"Content-Type": "application/octet-stream"},
    )


def _png(x: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(x).save(out, format="PNG")
    return out.getvalue()


def _count(factory: sessionmaker[Session], table: str, pid: int) -> int:
    with factory() as session:
        return int(
            session.execute(
                text(f"SELECT count(*) FROM {table} WHERE project_id = :p"), {"p": pid}
            ).scalar_one()
        )


def _staged_job(
    factory: sessionmaker[Session], pid: int, n: int, prefix: str = "r", chunk_items: int = 2
) -> int:
    """A text job of ``n`` toy sentences staged as the API stages it (in chunks of ``chunk_items``: a
    batch of the tests' jobs spans several), not yet sent anywhere."""
    texts, labels = toy_sentences(n)
    with factory() as session:
        job = jobs_repo.add(session, pid, "texts", n)
        rows = (
            Staged(i, f"{prefix}{i}", t, None, y) for i, (t, y) in enumerate(zip(texts, labels, strict=True))
        )
        jobs_repo.stage(session, job.id, rows, chunk_items)
        session.commit()
        return job.id


def test_a_text_job_stores_what_the_request_would_and_names_the_bad_items(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    pid = text_project(make_project, "hashing:64")["id"]
    texts, labels = toy_sentences(40)
    labels[3] = "maybe"  # an unknown class: refused, the others stored
    started = _upload(api, pid, _jsonl(texts, labels), background="true")
    assert started.status_code == 202, started.text
    job = started.json()
    assert started.headers["Location"] == f"/api/v1/projects/{pid}/jobs/{job['id']}"
    assert (
        job["kind"] == "texts" and job["total"] == 40 and job["status"] in ("queued", "running", "succeeded")
    )
    done = _wait_job(api, pid, job["id"])
    assert done["status"] == "succeeded", done
    assert (done["done"], done["inserted"], done["skipped"], done["n_errors"]) == (40, 39, 0, 1)
    assert done["progress"] == 1.0 and done["ground_truth_added"] == 39
    assert done["errors"] == [{"index": 3, "item": "t3", "reason": done["errors"][0]["reason"]}]
    assert "maybe" in done["errors"][0]["reason"]
    ids, X = stored_features(session_factory, pid)
    keep = [i for i in range(40) if i != 3]
    assert ids == [f"t{i}" for i in keep]
    expected = make_text_encoder("hashing:64").encode([texts[i] for i in keep])
    np.testing.assert_allclose(X, expected, rtol=1e-6)
    assert _count(session_factory, "item_texts", pid) == 39
    with session_factory() as session:  # nothing is left staged
        assert session.execute(text("SELECT count(*) FROM ingest_job_chunks")).scalar_one() == 0
    queue = api.get(f"/api/v1/projects/{pid}/queue").json()  # the job drew the sets, as an upload does
    assert queue["open_validation"] + queue["open_training"] > 0

    again = _upload(api, pid, _jsonl(texts, labels), background="true")  # the same file again
    redo = _wait_job(api, pid, again.json()["id"])
    assert (redo["inserted"], redo["skipped"], redo["n_errors"]) == (0, 39, 1)
    assert _count(session_factory, "items", pid) == 39
    listed = api.get(f"/api/v1/projects/{pid}/jobs").json()["items"]
    assert [j["id"] for j in listed] == [again.json()["id"], job["id"]]
    other = text_project(make_project, "hashing:64")["id"]
    assert api.get(f"/api/v1/projects/{other}/jobs/{job['id']}").status_code == 404


def test_small_uploads_answer_200_and_large_ones_202(
    settings: Settings, session_factory: sessionmaker[Session], make_project: MakeProject
) -> None:
    """The threshold (``sync_ingest_max_items``) and ``?background=false`` for the old behaviour."""
    _key, secret = create_key(session_factory, "jobs")
    small = settings.model_copy(update={"sync_ingest_max_items": 10})
    with TestClient(create_app(small)) as client:
        api = Api(client=client, headers={"Authorization": f"Bearer {secret}"}, settings=small)
        pid = text_project(make_project, "hashing:16")["id"]
        texts, labels = toy_sentences(12)
        assert _upload(api, pid, _jsonl(texts[:10], labels[:10])).status_code == 200
        large = _upload(api, pid, _jsonl(texts, labels, prefix="u"))
        assert large.status_code == 202
        assert _wait_job(api, pid, large.json()["id"])["inserted"] == 12
        forced = _upload(api, pid, _jsonl(texts, labels, prefix="v"), background="false")
        assert forced.status_code == 200 and forced.json()["inserted"] == 12
        items = [{"external_id": f"j{i}", "text": t} for i, t in enumerate(texts)]
        as_json = api.post(f"/api/v1/projects/{pid}/items/texts", json={"items": items})
        assert as_json.status_code == 202
        assert _wait_job(api, pid, as_json.json()["id"])["inserted"] == 12


def test_an_image_job_decodes_the_good_files_and_names_the_bad_ones(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    pid = make_project(classes=["cat", "dog"], data_kind="image", input_shape=[8, 8, 3])["id"]
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(6, 8, 8, 3), dtype=np.uint8)
    parts = [("files", (f"{'cat' if i % 2 else 'dog'}/{i}.png", _png(X[i]), "image/png")) for i in range(6)]
    parts.append(("files", ("cat/broken.png", b"\x89PNG\r\n\x1a\n not an image", "image/png")))
    started = api.post(
        f"/api/v1/projects/{pid}/items/images",
        params={"labels_from_folders": "true", "background": "true"},
        files=parts,
    )
    assert started.status_code == 202, started.text
    done = _wait_job(api, pid, started.json()["id"])
    assert done["status"] == "succeeded" and done["kind"] == "images"
    assert (done["inserted"], done["n_errors"], done["ground_truth_added"]) == (6, 1, 6)
    assert done["errors"][0]["item"] == "cat/broken.png" and done["errors"][0]["index"] == 6
    with session_factory() as session:
        rows = session.execute(
            text("SELECT external_id, data FROM items WHERE project_id = :p ORDER BY id"), {"p": pid}
        ).all()
    assert [r[0] for r in rows] == [p[1][0] for p in parts[:6]]
    for i, (_ext, data) in enumerate(rows):
        stored = np.frombuffer(bytes(data), dtype=np.uint8).reshape(8, 8, 3)
        np.testing.assert_array_equal(stored, decode_image(_png(X[i]), (8, 8, 3)))


@pytest.fixture
def stopped_once(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """The second batch's write fails once as if the database went away."""
    real = job_run._write
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OperationalError("INSERT", {}, Exception("server closed the connection unexpectedly"))
        return real(*args, **kwargs)

    monkeypatch.setattr(job_run, "_write", flaky)
    yield calls


@pytest.mark.parametrize(("chunk_items", "first_batch"), [(2, 4), (6, 6)])
def test_an_interrupted_job_resumes_and_stores_nothing_twice(
    api: Api,
    make_project: MakeProject,
    session_factory: sessionmaker[Session],
    stopped_once: dict[str, int],
    chunk_items: int,
    first_batch: int,
) -> None:
    """The second batch's write fails: the first is stored, the job given back, the retry stores the rest
    once. A batch is whole chunks: with chunks of 6 (staged by a service whose batch was 6) and batches of
    4 the first batch is the whole first chunk."""
    pid = text_project(make_project, "hashing:16")["id"]
    job_id = _staged_job(session_factory, pid, 10, chunk_items=chunk_items)
    batch = api.settings.model_copy(update={"ingest_job_batch": 4})
    with pytest.raises(OperationalError):
        execute_job(job_id, session_factory, batch)
    first = api.get(f"/api/v1/projects/{pid}/jobs/{job_id}").json()
    assert (first["status"], first["done"], first["inserted"]) == ("queued", first_batch, first_batch)
    assert _count(session_factory, "items", pid) == first_batch
    assert execute_job(job_id, session_factory, batch) == "succeeded"  # the retry
    assert execute_job(job_id, session_factory, batch) == "succeeded"  # a late duplicate: nothing
    body = api.get(f"/api/v1/projects/{pid}/jobs/{job_id}").json()
    assert (body["done"], body["inserted"], body["skipped"], body["attempts"]) == (10, 10, 0, 2)
    ids, _X = stored_features(session_factory, pid)
    assert ids == [f"r{i}" for i in range(10)]
    assert _count(session_factory, "item_texts", pid) == 10


def test_staged_items_read_back_as_written_and_a_batch_is_taken_by_its_range(
    make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    """The chunked staging keeps every field (labels as names, indices or none; image bytes; texts
    outside ASCII), a chunk ends where the upload's seqs jump, a batch is whole chunks read after a
    ``seq``, and taking a batch deletes its range and nothing else, counting what another runner took
    first."""
    pid = text_project(make_project, "hashing:16")["id"]
    written = [
        Staged(0, "a", "first", None, "pos"),
        Staged(1, "b", None, b"\x89PNG\x00\xff", 1),
        Staged(2, "c", "third é \ud800", None, None),
        *(Staged(i, f"x{i}", f"text {i}", None, 0) for i in range(3, 10)),
        Staged(12, "after a gap", "", b"", None),
    ]
    assert unpack(7, pack(written[:3])) == [r._replace(seq=7 + i) for i, r in enumerate(written[:3])]
    with session_factory() as session:
        job_id = jobs_repo.add(session, pid, "texts", 10).id
        jobs_repo.stage(session, job_id, iter(written), chunk_items=3)
        session.commit()
        starts = session.execute(
            text("SELECT seq, n FROM ingest_job_chunks WHERE job_id = :j ORDER BY seq"), {"j": job_id}
        ).all()
        assert [tuple(c) for c in starts] == [(0, 3), (3, 3), (6, 3), (9, 1), (12, 1)]
        first = jobs_repo.next_batch(session, job_id, 3)
        assert [c.seq for c in first] == [0] and first[0].items == written[:3]
        batch = jobs_repo.next_batch(session, job_id, 4, after=0)  # 4 items: two chunks
        assert [c.seq for c in batch] == [3, 6]
        assert [r for c in batch for r in c.items] == written[3:9]
        everything = jobs_repo.next_batch(session, job_id, 100)
        assert [r for c in everything for r in c.items] == written
        assert jobs_repo.take(session, job_id, [6]) == 1  # another runner stored chunk 6 first
        assert jobs_repo.take(session, job_id, [3, 6]) == 1  # fewer: the job rolls back
        left = [c.seq for c in jobs_repo.next_batch(session, job_id, 100)]
        assert left == [0, 9, 12]
        session.rollback()


def test_an_encoder_failing_on_its_thread_fails_the_job_keeping_the_batches_stored(
    make_project: MakeProject,
    session_factory: sessionmaker[Session],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Batches overlap (one encodes while the one before is written): an error in the second batch's
    encoding fails the job after the first batch is stored whole, and nothing of the second is written."""
    pid = text_project(make_project, "hashing:16")["id"]
    job_id = _staged_job(session_factory, pid, 10)
    real = job_run.TextKind.encode
    calls = {"n": 0}

    def second_fails(self: job_run.TextKind, batch: job_run.Prepared) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("the encoder broke")
        real(self, batch)

    monkeypatch.setattr(job_run.TextKind, "encode", second_fails)
    batch = settings.model_copy(update={"ingest_job_batch": 4})
    assert execute_job(job_id, session_factory, batch) == "failed"
    with session_factory() as session:
        job = jobs_repo.get(session, job_id)
        assert job is not None and "the encoder broke" in (job.reason or "")
        assert (job.done, job.inserted) == (4, 4)
        assert session.execute(text("SELECT count(*) FROM ingest_job_chunks")).scalar_one() == 0
    ids, _X = stored_features(session_factory, pid)
    assert ids == [f"r{i}" for i in range(4)]
    assert _count(session_factory, "item_texts", pid) == 4


def test_what_another_runner_left_of_a_batch_is_read_again(
    make_project: MakeProject,
    session_factory: sessionmaker[Session],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A runner that took over a stale job stores seqs 4-5 just before this one writes its batch 4-7: the
    batch is rolled back, the job goes on after it, then reads 6-7 again (they are still staged) and only
    then succeeds, with nothing left staged and nothing stored twice."""
    pid = text_project(make_project, "hashing:16")["id"]
    job_id = _staged_job(session_factory, pid, 10)
    real = job_run._write

    def other_runner_first(session: Session, job: int, batch: job_run.Prepared, *args: Any) -> bool:
        if batch.seqs == [4, 5, 6, 7]:
            with session_factory() as other:  # its own transaction, committed before ours starts
                other.execute(text("DELETE FROM ingest_job_chunks WHERE seq = 4"))  # items 4, 5
                other.commit()
        return bool(real(session, job, batch, *args))

    monkeypatch.setattr(job_run, "_write", other_runner_first)
    assert execute_job(job_id, session_factory, settings.model_copy(update={"ingest_job_batch": 4})) == (
        "succeeded"
    )
    with session_factory() as session:
        assert session.execute(text("SELECT count(*) FROM ingest_job_chunks")).scalar_one() == 0
        job = jobs_repo.get(session, job_id)
        assert job is not None and (job.done, job.inserted) == (8, 8)  # 4-5 count in the other's run
    ids, _X = stored_features(session_factory, pid)
    assert sorted(ids) == sorted(f"r{i}" for i in (0, 1, 2, 3, 6, 7, 8, 9))


def test_a_cheap_encoders_batches_grow(
    make_project: MakeProject,
    session_factory: sessionmaker[Session],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a batch that encoded quickly the job reads many more items at a time (here: all that are
    left), and stores the same items in the same order as batch by batch."""
    pid = text_project(make_project, "hashing:16")["id"]
    job_id = _staged_job(session_factory, pid, 200)
    sizes: list[int] = []
    real = job_run._write

    def counted(session: Session, job: int, batch: job_run.Prepared, *args: Any) -> bool:
        sizes.append(len(batch.seqs))
        return bool(real(session, job, batch, *args))

    monkeypatch.setattr(job_run, "_write", counted)
    monkeypatch.setattr(job_run, "BATCH_S", 1_000.0)  # any encoding time is "quick"
    assert execute_job(job_id, session_factory, settings.model_copy(update={"ingest_job_batch": 8})) == (
        "succeeded"
    )
    assert sizes == [8, 8, 184]  # the second batch was read while the first was encoding
    ids, X = stored_features(session_factory, pid)
    assert ids == [f"r{i}" for i in range(200)]
    np.testing.assert_allclose(X, make_text_encoder("hashing:16").encode(toy_sentences(200)[0]), rtol=1e-6)


@pytest.mark.parametrize(
    ("encode_s", "raw_bytes", "row_bytes", "expected"),
    [
        (0.008, 100, 1_536, 3_200),  # hashing: as many as encode in BATCH_S (0.05 s)
        (0.001, 100, 1_536, job_run.MAX_BATCH_ITEMS),
        (15.0, 100, 1_536, 512),  # MiniLM on a CPU: the first size stays
        (0.01, 200_000, 301_056, 512),  # large images: MAX_BATCH_BYTES holds them, never below the first
        (0.001, 2_300, 6_144, int(job_run.MAX_BATCH_BYTES // (2_300 + 6_144))),
    ],
)
def test_batch_size(encode_s: float, raw_bytes: int, row_bytes: int, expected: int) -> None:
    size = job_run.BatchSize(512, row_bytes)
    size.saw(job_run.Prepared(seqs=list(range(512)), raw_bytes=512 * raw_bytes), encode_s)
    assert size.items == expected
    size.saw(job_run.Prepared(seqs=list(range(512)), raw_bytes=512 * raw_bytes), 100.0)
    assert size.items == expected  # never shrinks


def test_a_job_whose_encoder_cannot_load_fails_with_its_reason(
    api: Api,
    make_project: MakeProject,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pid = text_project(make_project, "hashing:16")["id"]
    texts, labels = toy_sentences(5)

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("the model files are gone")

    monkeypatch.setattr(job_run, "text_encoder", broken)
    started = _upload(api, pid, _jsonl(texts, labels), background="true")
    done = _wait_job(api, pid, started.json()["id"])
    assert done["status"] == "failed" and "the model files are gone" in done["reason"]
    assert _count(session_factory, "items", pid) == 0
    with session_factory() as session:
        assert session.execute(text("SELECT count(*) FROM ingest_job_chunks")).scalar_one() == 0


def test_a_bad_file_is_refused_before_any_job(api: Api, make_project: MakeProject) -> None:
    pid = text_project(make_project, "hashing:16")["id"]
    bad = _upload(
        api, pid, b'{"id": "a", "text": "fine", "label": "pos"}\n{"id": "b", "text": ""}', background="true"
    )
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "file"
    dup = _upload(api, pid, b'{"id": "x", "text": "a"}\n{"id": "x", "text": "b"}', background="true")
    assert dup.status_code == 422 and "duplicate" in dup.json()["detail"]["reason"]
    assert api.get(f"/api/v1/projects/{pid}/jobs").json()["items"] == []


def test_a_job_left_queued_resumes_when_the_service_starts(
    settings: Settings, session_factory: sessionmaker[Session], make_project: MakeProject
) -> None:
    """The embedded default: a job a stopped process left queued runs when the next one starts."""
    pid = text_project(make_project, "hashing:16")["id"]
    with session_factory() as session:
        job = jobs_repo.add(session, pid, "texts", 3)
        rows = [Staged(i, f"q{i}", f"text {i}", None, None) for i in range(3)]
        jobs_repo.stage(session, job.id, rows)
        session.commit()
        job_id = job.id
    _key, secret = create_key(session_factory, "resume")
    with TestClient(create_app(settings)) as client:
        api = Api(client=client, headers={"Authorization": f"Bearer {secret}"}, settings=settings)
        done = _wait_job(api, pid, job_id)
    assert (done["status"], done["inserted"], done["attempts"]) == ("succeeded", 3, 1)
