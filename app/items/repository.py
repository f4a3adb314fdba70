"""SQL for items, their ground truth, and loading their data as arrays."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import LargeBinary, Select, and_, bindparam, exists, func, literal, select, text, update
from sqlalchemy.orm import Session

from app.db.base import UTCDateTime
from app.db.bulk import (
    chunks,
    clear_stage,
    copy_new_rows,
    create_stage,
    dialect,
    encode_copy_rows,
    pg_timestamp,
    stage_rows,
)
from app.db.models import AutoLabel, GroundTruth, HumanLabel, Item

STAGE = "staged_items"
STAGE_COLUMNS = (
    ("seq", "int8", "INTEGER"),
    ("external_id", "text", "TEXT"),
    ("data", "bytea", "BLOB"),
    ("ground_truth", "int4", "INTEGER"),
)


COPY_COLUMNS = ("project_id", "data", "role", "created_at", "external_id")


def can_copy(session: Session) -> bool:
    """Whether :func:`copy_chunk` can be tried (PostgreSQL)."""
    return dialect(session) == "postgresql"


def copy_chunk(
    session: Session,
    project_id: int,
    external_ids: Sequence[str],
    data: np.ndarray,
    truth: np.ndarray,
    now: datetime,
) -> tuple[int, int] | None:
    """The fast path of ingestion (PostgreSQL): binary COPY of k new items straight into ``items``.

    ``data`` (k, row_bytes) uint8 as stored, ``truth`` (k,) class indices (-1: none). Items get ids in
    row order (COPY inserts in order), as :func:`ingest_chunk` gives them. Returns (items inserted,
    ground-truth rows inserted), or None, with nothing written, when an external id already exists in
    the project: the caller then uses :func:`ingest_chunk`, which skips the existing ones.
    """
    k = len(external_ids)
    payload = encode_copy_rows(
        k,
        [
            (">i8", project_id),
            (f"V{data.shape[1]}", data),
            ("S4", b"pool"),
            (">i8", pg_timestamp(now)),
        ],
        tail=[ext.encode("utf-8") for ext in external_ids],
    )
    inserted = copy_new_rows(session, "items", COPY_COLUMNS, [payload])
    if inserted is None:
        return None
    known = np.flatnonzero(truth >= 0)
    added = 0
    if known.size:
        added = session.execute(
            text(
                "INSERT INTO ground_truth (item_id, label) "
                "SELECT i.id, t.label FROM unnest(CAST(:ext AS text[]), CAST(:label AS int4[])) "
                "AS t(external_id, label) "
                "JOIN items i ON i.project_id = :pid AND i.external_id = t.external_id "
                "ON CONFLICT (item_id) DO NOTHING"
            ),
            {
                "pid": project_id,
                "ext": [external_ids[i] for i in known.tolist()],
                "label": truth[known].tolist(),
            },
        ).rowcount  # type: ignore[attr-defined]
    return inserted, int(added)


def insert_chunk(
    session: Session,
    project_id: int,
    external_ids: Sequence[str],
    data: np.ndarray,
    truth: np.ndarray,
    now: datetime,
) -> tuple[int, int]:
    """SQLite's ingestion: k rows straight into ``items`` in row order (new ids in that order), ``ON
    CONFLICT DO NOTHING`` skipping external ids the project has; then the ground truth of the rows that
    have one. ``data`` (k, row_bytes) uint8 as stored, ``truth`` (k,) (-1: none). Returns what
    :func:`ingest_chunk` returns.

    One statement for all k rows (and one for their ground truth), not an ``executemany``: the ids (and
    labels) go in as one JSON array, the rows' bytes as one blob that ``substr`` cuts, so SQLite does the
    whole insert in one step, without the GIL and without Python between rows. An ``executemany`` bound
    each row in Python and took the GIL back after each row's step, so an ingest job's encoding thread
    and this insert waited for each other (10,000 PNGs through a job: 74-138 ms an insert of ~2,800
    rows, 28-46 ms as one statement). Needs SQLite's JSON functions (built in since 3.38, in most
    builds before). No staging table (SQLite writes it as it writes any table)."""
    k = len(external_ids)
    if not k:
        return 0, 0
    dialect_ = session.get_bind().dialect
    process = UTCDateTime().bind_processor(dialect_)
    stamp = process(now) if process else now
    width = int(data.shape[1])
    ids = json.dumps(list(external_ids), ensure_ascii=False)
    raw = session.connection().connection.driver_connection
    cursor = raw.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(
            "INSERT INTO items (project_id, external_id, data, role, created_at) "
            "SELECT ?, j.value, substr(?, j.key * ? + 1, ?), 'pool', ? FROM json_each(?) j "
            "WHERE true ORDER BY j.key ON CONFLICT (project_id, external_id) DO NOTHING",
            (project_id, np.ascontiguousarray(data).data, width, width, stamp, ids),
        )
        inserted = cursor.rowcount
        known = np.flatnonzero(truth >= 0).tolist()
        added = 0
        if known:
            pairs = json.dumps([[external_ids[i], int(truth[i])] for i in known], ensure_ascii=False)
            cursor.execute(  # CROSS JOIN: the JSON rows outside, each looked up by the unique index
                "INSERT INTO ground_truth (item_id, label) "
                "SELECT i.id, json_extract(j.value, '$[1]') FROM json_each(?) j CROSS JOIN items i "
                "ON i.project_id = ? AND i.external_id = json_extract(j.value, '$[0]') "
                "WHERE true ON CONFLICT (item_id) DO NOTHING",
                (pairs, project_id),
            )
            added = cursor.rowcount
    finally:
        cursor.close()
    return int(inserted), int(added)


def start_ingest(session: Session) -> None:
    """Prepare the staging table for :func:`ingest_chunk` calls in this transaction."""
    create_stage(session, STAGE, STAGE_COLUMNS)


def ingest_chunk(
    session: Session, project_id: int, rows: Sequence[tuple[int, str, bytes, int | None]], now: datetime
) -> tuple[int, int]:
    """Insert (seq, external_id, data, ground_truth) rows whose external_id is new in the project;
    existing ones are left as they are. Returns (items inserted, ground-truth rows inserted)."""
    stage_rows(session, STAGE, STAGE_COLUMNS, rows)
    inserted = session.execute(
        text(
            "INSERT INTO items (project_id, external_id, data, role, created_at) "
            f"SELECT :pid, s.external_id, s.data, 'pool', :now FROM {STAGE} s WHERE true ORDER BY s.seq "
            "ON CONFLICT (project_id, external_id) DO NOTHING"
        ).bindparams(bindparam("now", type_=UTCDateTime())),
        {"pid": project_id, "now": now},
    ).rowcount  # type: ignore[attr-defined]
    truth = 0
    if any(row[3] is not None for row in rows):
        truth = session.execute(
            text(
                "INSERT INTO ground_truth (item_id, label) "
                f"SELECT i.id, s.ground_truth FROM {STAGE} s "
                "JOIN items i ON i.project_id = :pid AND i.external_id = s.external_id "
                "WHERE s.ground_truth IS NOT NULL ON CONFLICT (item_id) DO NOTHING"
            ),
            {"pid": project_id},
        ).rowcount  # type: ignore[attr-defined]
    clear_stage(session, STAGE)
    return int(inserted), int(truth)


def ids_by_external(session: Session, project_id: int, external_ids: Sequence[str]) -> dict[str, int]:
    """{external id: item id} of those of ``external_ids`` the project holds. On the driver's cursor, a
    chunk of ids a statement: SQLAlchemy's rendering of an ``IN`` list of 5,000 ids cost ~3 µs an id,
    several times the lookup itself (an ingest job asks for every item it reads)."""
    found: dict[str, int] = {}
    postgres = dialect(session) == "postgresql"
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        for part in chunks(list(external_ids)):
            if postgres:
                cursor.execute(
                    "SELECT external_id, id FROM items WHERE project_id = %s AND external_id = ANY(%s)",
                    (project_id, part),
                )
            else:
                marks = ", ".join("?" * len(part))
                cursor.execute(
                    f"SELECT external_id, id FROM items WHERE project_id = ? AND external_id IN ({marks})",
                    (project_id, *part),
                )
            found.update(cursor.fetchall())
    finally:
        cursor.close()
    return found


def roles_by_id(session: Session, project_id: int, ids: Sequence[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for part in chunks(list(ids)):
        rows = session.execute(
            select(Item.id, Item.role).where(Item.project_id == project_id, Item.id.in_(part))
        )
        found.update({item_id: role for item_id, role in rows})
    return found


def set_role(
    session: Session, ids: Sequence[int] | np.ndarray, role: str, *, only_from: str | None = None
) -> int:
    """Set the role of items ``ids`` (only of those whose role is ``only_from`` when given)."""
    changed = 0
    for part in chunks(ids):
        stmt = update(Item).where(Item.id.in_(part)).values(role=role)
        if only_from is not None:
            stmt = stmt.where(Item.role == only_from)
        changed += session.execute(stmt.execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
    return changed


def unlabeled_pool_ids(session: Session, project_id: int) -> np.ndarray:
    """(n,) int64 ids of pool items with neither a human nor an auto-label, in id order."""
    # a Core query: no ORM row processing for a column of ints (~1 µs an item at 20,000)
    rows = session.connection().execute(pool_query(project_id, select(Item.id)).order_by(Item.id))
    return np.fromiter(rows.scalars(), dtype=np.int64)


def pool_query(project_id: int, stmt: Select) -> Select:
    auto = exists().where(AutoLabel.project_id == Item.project_id, AutoLabel.item_id == Item.id)
    human = exists().where(HumanLabel.item_id == Item.id)
    return stmt.where(Item.project_id == project_id, Item.role == "pool", ~auto, ~human)


def count_pool(session: Session, project_id: int) -> int:
    return int(session.scalar(pool_query(project_id, select(func.count()).select_from(Item))) or 0)


def count_items(session: Session, project_id: int, role: str | None = None) -> int:
    stmt = select(func.count()).select_from(Item).where(Item.project_id == project_id)
    if role is not None:
        stmt = stmt.where(Item.role == role)
    return int(session.scalar(stmt) or 0)


def has_items(session: Session, project_id: int) -> bool:
    return bool(session.scalar(select(exists().where(Item.project_id == project_id))))


def count_labeled(session: Session, project_id: int, role: str) -> int:
    """Items of ``role`` that have a human label."""
    stmt = (
        select(func.count())
        .select_from(Item)
        .join(HumanLabel, HumanLabel.item_id == Item.id)
        .where(Item.project_id == project_id, Item.role == role)
    )
    return int(session.scalar(stmt) or 0)


def page(session: Session, project_id: int, *, after_id: int, limit: int, role: str | None) -> list[Any]:
    """Items after ``after_id`` in id order, with whether each has ground truth / a human / an auto-label."""
    stmt = (
        select(
            Item.id,
            Item.external_id,
            Item.role,
            Item.created_at,
            GroundTruth.label.label("ground_truth"),
            HumanLabel.label.label("human_label"),
            AutoLabel.label.label("auto_label"),
        )
        .outerjoin(GroundTruth, GroundTruth.item_id == Item.id)
        .outerjoin(HumanLabel, HumanLabel.item_id == Item.id)
        .outerjoin(AutoLabel, and_(AutoLabel.project_id == Item.project_id, AutoLabel.item_id == Item.id))
        .where(Item.project_id == project_id, Item.id > after_id)
        .order_by(Item.id)
        .limit(limit)
    )
    if role is not None:
        stmt = stmt.where(Item.role == role)
    return list(session.execute(stmt))


def data_by_ids(session: Session, project_id: int, ids: Sequence[int]) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    for part in chunks(list(ids)):
        rows = session.execute(
            select(Item.id, Item.data).where(Item.project_id == project_id, Item.id.in_(part))
        )
        found.update({item_id: data for item_id, data in rows})
    return found


def ground_truth_by_ids(session: Session, ids: Sequence[int]) -> dict[int, int]:
    found: dict[int, int] = {}
    for part in chunks(list(ids)):
        rows = session.execute(
            select(GroundTruth.item_id, GroundTruth.label).where(GroundTruth.item_id.in_(part))
        )
        found.update({item_id: label for item_id, label in rows})
    return found


def load_rows(
    session: Session, stmt: Select, n: int, row_bytes: int, *, batch: int = 20_000
) -> tuple[np.ndarray, np.ndarray, list[tuple[Any, ...]]]:
    """Stream ``stmt`` (columns: id, data, extra...) into an (n, row_bytes) uint8 array filled in place.

    Returns (ids (n,) int64, data (n, row_bytes) uint8, the extra columns per row). ``n`` must be the
    number of rows the statement returns (count it in the same snapshot); each data value must be
    ``row_bytes`` long. Rows are read in batches (a server-side cursor on PostgreSQL), and each batch is
    copied into the preallocated array at once, so memory holds the array plus one batch.
    """
    ids = np.empty(n, dtype=np.int64)
    data = np.empty((n, row_bytes), dtype=np.uint8)
    extras: list[tuple[Any, ...]] = []
    filled = 0
    result = session.execute(stmt.execution_options(yield_per=batch))
    for part in result.partitions():
        k = len(part)
        if filled + k > n:
            raise RuntimeError(f"expected {n} rows, the query returned more")
        joined = b"".join(row[1] for row in part)
        if len(joined) != k * row_bytes:
            raise RuntimeError(f"expected item data of {row_bytes} bytes, got rows of other sizes")
        data[filled : filled + k] = np.frombuffer(joined, dtype=np.uint8).reshape(k, row_bytes)
        ids[filled : filled + k] = [row[0] for row in part]
        extras.extend(tuple(row[2:]) for row in part)
        filled += k
    if filled != n:
        raise RuntimeError(f"expected {n} rows, the query returned {filled}")
    return ids, data, extras


def load_id_data(
    session: Session, stmt: Select, n: int, row_bytes: int, *, batch_bytes: int = 1 << 25
) -> tuple[np.ndarray, np.ndarray]:
    """ids (n,) int64 and data (n, row_bytes) uint8 of ``stmt`` (columns ``Item.id``, ``Item.data``,
    ordered by ``Item.id``; ``n`` counted in the same snapshot).

    PostgreSQL: keyset batches of about ``batch_bytes``, each fetched as ONE row holding the batch's
    ids (``int8send``) and data concatenated by ``string_agg`` in binary, so that numpy reads both with
    ``np.frombuffer``: no Python object per row. The aggregates read the id-ordered subquery in order;
    should a plan ever not, the rows are sorted by id here. SQLite: :func:`load_rows`.
    """
    if dialect(session) != "postgresql":
        ids, data, _ = load_rows(session, stmt, n, row_bytes)
        return ids, data
    batch = max(1, batch_bytes // max(row_bytes, 1))
    inner = stmt.where(Item.id > bindparam("after")).limit(bindparam("batch")).subquery()
    empty = literal(b"", LargeBinary)
    query = select(
        func.count(),
        func.string_agg(func.int8send(inner.c.id), empty),
        func.string_agg(inner.c.data, empty),
    )
    compiled = query.compile(dialect=session.get_bind().dialect)
    ids = np.empty(n, dtype=np.int64)
    data = np.empty((n, row_bytes), dtype=np.uint8)
    filled, after = 0, -1
    raw = session.connection().connection.driver_connection
    with raw.cursor(binary=True) as cursor:  # type: ignore[union-attr]
        while True:
            cursor.execute(str(compiled), {**compiled.params, "after": after, "batch": batch})
            k, id_bytes, blob = cursor.fetchone()
            if k == 0:
                break
            if filled + k > n:
                raise RuntimeError(f"expected {n} rows, the query returned more")
            if len(blob) != k * row_bytes:
                raise RuntimeError(f"expected item data of {row_bytes} bytes, got rows of other sizes")
            part = np.frombuffer(id_bytes, dtype=">i8")  # (k,) big-endian, as int8send writes it
            ids[filled : filled + k] = part
            data[filled : filled + k] = np.frombuffer(blob, dtype=np.uint8).reshape(k, row_bytes)
            filled += k
            after = int(part.max())
            if k < batch:
                break
    if filled != n:
        raise RuntimeError(f"expected {n} rows, the query returned {filled}")
    if n > 1 and (np.diff(ids) <= 0).any():
        order = np.argsort(ids, kind="stable")
        ids, data = ids[order], data[order]
    return ids, data
