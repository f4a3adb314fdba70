"""The fast bulk paths of issue 6 (binary COPY writes, aggregated feature loads) give exactly what the
slower general paths give: same rows, same ids in the same order, same skips, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from app.db.bulk import encode_copy_rows, pg_timestamp
from app.db.models import AutoLabel, GroundTruth, HumanLabel, Item, Round
from app.items import repository as items_repo
from app.rounds import auto_labels_repository as auto_repo
from tests.app.conftest import Api

MakeProject = Callable[..., dict[str, Any]]


def _npz(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_encode_copy_rows_layout() -> None:
    """Field count, then (length, big-endian value) per field, the variable-length tail last."""
    data = np.arange(6, dtype=np.uint8).reshape(2, 3)
    payload = encode_copy_rows(2, [(">i8", np.array([7, -1])), ("V3", data), (">f8", 0.5)], tail=[b"ab", b""])
    rows = []
    at = 0
    for _ in range(2):
        (count,) = struct.unpack_from(">h", payload, at)
        at += 2
        values = []
        for _ in range(count):
            (length,) = struct.unpack_from(">i", payload, at)
            values.append(payload[at + 4 : at + 4 + length])
            at += 4 + length
        rows.append(values)
    assert at == len(payload)
    assert rows[0] == [struct.pack(">q", 7), b"\x00\x01\x02", struct.pack(">d", 0.5), b"ab"]
    assert rows[1] == [struct.pack(">q", -1), b"\x03\x04\x05", struct.pack(">d", 0.5), b""]


def test_pg_timestamp_counts_microseconds_from_2000() -> None:
    assert pg_timestamp(datetime(2000, 1, 1, tzinfo=UTC)) == 0
    assert pg_timestamp(datetime(2000, 1, 2, 0, 0, 1, 5, tzinfo=UTC)) == 86_401_000_005
    assert pg_timestamp(datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC)) == -1_000_000


def test_upload_then_overlapping_upload_keeps_file_order_and_skips_existing(
    api: Api,
    make_project: MakeProject,
    session_factory: sessionmaker[Session],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """First upload: all new (the COPY path on PostgreSQL); second: half known (PostgreSQL takes the
    staged path; SQLite's executemany skips the known ones itself)."""
    staged: list[int] = []
    real = items_repo.ingest_chunk

    def spy(session: Session, project_id: int, rows: Any, now: datetime) -> tuple[int, int]:
        staged.append(len(rows))
        return real(session, project_id, rows, now)

    monkeypatch.setattr(items_repo, "ingest_chunk", spy)
    pid = make_project(input_shape=[3])["id"]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)).astype(np.float32)
    ids = np.array([f"id-{i:03d}-é" for i in rng.permutation(40)])  # not sorted: order must follow the file
    y = np.where(np.arange(40) % 3 == 0, -1, np.arange(40) % 3)
    url = f"/api/v1/projects/{pid}/items/upload"
    body = _npz(X=X[:30], external_ids=ids[:30], y=y[:30])
    first = api.post(url, content=body, headers={"content-type": "application/octet-stream"})
    assert first.json() == {"received": 30, "inserted": 30, "skipped": 0, "ground_truth_added": 20}
    assert staged == []  # PostgreSQL: COPY; SQLite: its executemany
    body = _npz(X=X[20:], external_ids=ids[20:], y=y[20:])
    second = api.post(url, content=body, headers={"content-type": "application/octet-stream"})
    assert second.json() == {"received": 20, "inserted": 10, "skipped": 10, "ground_truth_added": 6}
    assert staged == ([20] if database_url.startswith("postgresql") else [])
    with session_factory() as session:
        rows = list(session.scalars(select(Item).where(Item.project_id == pid).order_by(Item.id)))
        truth = {r.item_id: r.label for r in session.execute(select(GroundTruth.item_id, GroundTruth.label))}
    assert [r.external_id for r in rows] == ids.tolist()
    stored = np.stack([np.frombuffer(r.data, dtype="<f4") for r in rows])
    np.testing.assert_array_equal(stored, X)
    assert {r.role for r in rows} <= {"pool", "validation", "train"}  # the upload drew the sets from them
    assert all(abs(r.created_at - datetime.now(UTC)) < timedelta(minutes=5) for r in rows)
    assert {r.external_id: truth[r.id] for r in rows if r.id in truth} == {
        ids[i]: int(y[i]) for i in range(40) if y[i] >= 0
    }


def _items(session: Session, pid: int, n: int, d: int = 2) -> np.ndarray:
    now = datetime.now(UTC)
    X = np.arange(n * d, dtype=np.float32).reshape(n, d)
    session.add_all(
        Item(project_id=pid, external_id=f"x{i}", data=X[i].tobytes(), role="pool", created_at=now)
        for i in range(n)
    )
    session.flush()
    return np.array(session.scalars(select(Item.id).where(Item.project_id == pid).order_by(Item.id)).all())


def test_auto_label_write_skips_human_labels_and_is_idempotent(
    make_project: MakeProject,
    session_factory: sessionmaker[Session],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    copied: list[int | None] = []
    real = auto_repo._copy

    def spy(*args: Any) -> int | None:
        copied.append(real(*args))
        return copied[-1]

    monkeypatch.setattr(auto_repo, "_copy", spy)
    pid = make_project()["id"]
    now = datetime.now(UTC)
    with session_factory() as session:
        ids = _items(session, pid, 12)
        session.add(HumanLabel(project_id=pid, item_id=int(ids[4]), label=0, source="api"))
        round_ = Round(project_id=pid, index=0, status="running")
        session.add(round_)
        session.flush()
        rid = round_.id
        picked = ids[[9, 2, 4, 7]]  # out of order, one with a human label
        written = auto_repo.write(
            session, pid, rid, picked, np.array([1, 2, 0, 1]), np.array([0.9, 0.8, 0.7, 0.6]), now
        )
        assert written == 3
        again = auto_repo.write(
            session, pid, rid, ids[[2, 3]], np.array([0, 0]), np.array([0.1, 0.2], dtype=np.float32), now
        )
        assert again == 1  # item 2 is already auto-labeled: only item 3 is new
        assert copied == ([3, None] if database_url.startswith("postgresql") else [])
        session.commit()
        got = session.execute(
            select(AutoLabel.item_id, AutoLabel.label, AutoLabel.confidence, AutoLabel.round_id).order_by(
                AutoLabel.id
            )
        ).all()
    assert [tuple(r) for r in got] == [
        (int(ids[2]), 2, 0.8, rid),
        (int(ids[7]), 1, 0.6, rid),
        (int(ids[9]), 1, 0.9, rid),
        (int(ids[3]), 0, float(np.float32(0.2)), rid),
    ]


def test_load_id_data_matches_the_row_by_row_load(
    make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    """Several small batches, with auto-labeled and human-labeled items left out of the pool."""
    pid = make_project()["id"]
    with session_factory() as session:
        ids = _items(session, pid, 50, d=3)
        round_ = Round(project_id=pid, index=0, status="running")
        session.add(round_)
        session.flush()
        auto_repo.write(session, pid, round_.id, ids[[1, 5, 6]], np.zeros(3), np.ones(3), datetime.now(UTC))
        session.add(HumanLabel(project_id=pid, item_id=int(ids[10]), label=1, source="api"))
        session.commit()
    with session_factory() as session:
        stmt = items_repo.pool_query(pid, select(Item.id, Item.data)).order_by(Item.id)
        n = items_repo.count_pool(session, pid)
        assert n == 46
        fast_ids, fast_data = items_repo.load_id_data(session, stmt, n, 12, batch_bytes=12 * 7)
        slow_ids, slow_data, _ = items_repo.load_rows(session, stmt, n, 12, batch=9)
    np.testing.assert_array_equal(fast_ids, slow_ids)
    np.testing.assert_array_equal(fast_data, slow_data)
    expected = np.delete(np.arange(50 * 3, dtype=np.float32).reshape(50, 3), [1, 5, 6, 10], axis=0)
    np.testing.assert_array_equal(fast_data.view("<f4"), expected)


def test_load_id_data_refuses_a_wrong_count(
    make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    pid = make_project()["id"]
    with session_factory() as session:
        _items(session, pid, 5)
        session.commit()
        stmt = items_repo.pool_query(pid, select(Item.id, Item.data)).order_by(Item.id)
        for wrong in (4, 6):
            try:
                items_repo.load_id_data(session, stmt, wrong, 8)
            except RuntimeError as exc:
                assert f"expected {wrong} rows" in str(exc)
            else:
                raise AssertionError("a wrong row count went unnoticed")
            session.rollback()
        assert session.execute(text("SELECT count(*) FROM items")).scalar_one() == 5
