"""Bulk-write helpers shared by the repositories: staging rows in a temporary table (binary ``COPY`` on
PostgreSQL, ``executemany`` on SQLite) so that the real writes are single set-based statements
(``INSERT ... SELECT ... ON CONFLICT DO NOTHING``), chunking of id lists, and the fast path of
PostgreSQL: rows encoded column-wise with numpy into the binary ``COPY`` format and copied straight
into the real table inside a savepoint (:func:`copy_new_rows`), so that no Python object is made per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

ID_CHUNK = 5_000
UNIQUE_VIOLATION = "23505"
# The binary COPY format (PostgreSQL docs, "COPY", section "Binary Format"): an 11-byte signature, a
# 32-bit flags field and a 32-bit header-extension length; then per tuple a 16-bit field count and, per
# field, a 32-bit length followed by the value in its binary send format (big-endian); a 16-bit -1 ends.
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
COPY_TRAILER = b"\xff\xff"
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def chunks(values: Sequence[Any] | np.ndarray, size: int = ID_CHUNK) -> Iterator[list[Any]]:
    """Consecutive slices of ``values`` as Python lists (ints for numpy integer arrays)."""
    for start in range(0, len(values), size):
        part = values[start : start + size]
        yield part.tolist() if isinstance(part, np.ndarray) else list(part)


def create_stage(session: Session, name: str, columns: Sequence[tuple[str, str, str]]) -> None:
    """An empty temporary table ``name`` with ``columns`` = (name, PostgreSQL type, SQLite type).

    On PostgreSQL it is dropped at commit; on SQLite it lives with the connection, so it is emptied here.
    """
    if dialect(session) == "postgresql":
        cols = ", ".join(f"{c} {pg}" for c, pg, _ in columns)
        session.execute(text(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({cols}) ON COMMIT DROP"))
    else:
        cols = ", ".join(f"{c} {lite}" for c, _, lite in columns)
        session.execute(text(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({cols})"))
    session.execute(text(f"DELETE FROM {name}"))


def stage_rows(
    session: Session, name: str, columns: Sequence[tuple[str, str, str]], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Append ``rows`` to the temporary table (binary COPY on PostgreSQL, executemany on SQLite)."""
    if rows:
        names = [c for c, _, _ in columns]
        append_rows(session, name, names, rows, pg_types=[pg for _, pg, _ in columns], per_call=len(rows))


def append_rows(
    session: Session,
    table: str,
    columns: Sequence[str],
    rows: Iterable[tuple[Any, ...]],
    *,
    pg_types: Sequence[str] | None = None,
    per_call: int = 1_000,
) -> None:
    """Append ``rows`` to ``table`` on the driver's cursor, with no SQLAlchemy processing a row: ``COPY``
    on PostgreSQL (binary when ``pg_types`` gives the columns' types, text otherwise), ``executemany`` of
    ``per_call`` rows at a time on SQLite. ``rows`` may be a generator: it is read once, in order."""
    names = ", ".join(columns)
    raw = session.connection().connection.driver_connection
    if dialect(session) == "postgresql":
        binary = " (FORMAT BINARY)" if pg_types else ""
        with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN{binary}") as copy:  # type: ignore[union-attr]
            if pg_types:
                copy.set_types(list(pg_types))
            for row in rows:
                copy.write_row(row)
        return
    sql = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' for _ in columns)})"
    remaining = iter(rows)
    cursor = raw.cursor()  # type: ignore[union-attr]
    try:
        while part := list(islice(remaining, per_call)):
            cursor.executemany(sql, part)
    finally:
        cursor.close()


def clear_stage(session: Session, name: str) -> None:
    verb = "TRUNCATE" if dialect(session) == "postgresql" else "DELETE FROM"
    session.execute(text(f"{verb} {name}"))


def pg_timestamp(value: datetime) -> int:
    """A timezone-aware datetime as PostgreSQL's binary ``timestamptz``: microseconds since 2000-01-01 UTC."""
    delta = value - PG_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def encode_copy_rows(n: int, fixed: Sequence[tuple[str, Any]], tail: Sequence[bytes] | None = None) -> bytes:
    """``n`` tuples in the binary COPY format (without signature and trailer), built column-wise with numpy.

    ``fixed``: (binary dtype, values) per column, in the COPY's column order; the dtype is a big-endian
    scalar (``">i8"`` int8, ``">i4"`` int4, ``">f8"`` float8, ``"S4"`` a 4-byte text) or ``"V<m>"`` (an
    m-byte bytea; values an (n, m) uint8 array); values broadcast to n rows. ``tail``: an optional last
    column of variable-length values (e.g. UTF-8 text), one ``bytes`` per row. No NULLs.
    Rows without a tail are one record array (no per-row work); with a tail, the fixed part of each row
    and its tail are joined in one ``bytes.join``.
    """
    fields: list[tuple[str, Any]] = [("count", ">i2")]
    for i, (dtype, _) in enumerate(fixed):
        fields += [(f"len{i}", ">i4"), (f"v{i}", dtype)]
    if tail is not None:
        fields.append(("tail_len", ">i4"))
    record = np.dtype(fields)
    out = np.empty(n, dtype=record)
    out["count"] = len(fixed) + (tail is not None)
    for i, (dtype, values) in enumerate(fixed):
        width = np.dtype(dtype).itemsize
        out[f"len{i}"] = width
        if dtype.startswith("V"):
            out[f"v{i}"] = np.ascontiguousarray(values, dtype=np.uint8).reshape(n, width).view(dtype)[:, 0]
        else:
            out[f"v{i}"] = values
    if tail is None:
        return out.tobytes()
    out["tail_len"] = np.fromiter(map(len, tail), dtype=np.int64, count=n)
    view = out.view(np.uint8).data
    size = record.itemsize
    parts: list[Any] = [b""] * (2 * n)
    parts[0::2] = [view[i * size : (i + 1) * size] for i in range(n)]
    parts[1::2] = tail
    return b"".join(parts)


def copy_new_rows(
    session: Session, table: str, columns: Sequence[str], payloads: Iterable[bytes]
) -> int | None:
    """PostgreSQL only: binary ``COPY`` of encoded rows (:func:`encode_copy_rows`) straight into
    ``table``, inside a savepoint. Returns the number of rows copied, or None when a row broke a unique
    constraint (the savepoint is rolled back: nothing of this call stays, the caller takes the slower
    ``INSERT ... ON CONFLICT DO NOTHING`` path). Other errors propagate."""
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    try:
        with session.begin_nested():
            # the SAVEPOINT is emitted when the session hands out its connection, so take it inside
            raw = session.connection().connection.driver_connection
            with raw.cursor() as cursor:  # type: ignore[union-attr]
                with cursor.copy(sql) as copy:
                    copy.write(COPY_SIGNATURE)
                    for payload in payloads:
                        copy.write(payload)
                    copy.write(COPY_TRAILER)
                return int(cursor.rowcount)
    except Exception as exc:
        if getattr(exc, "sqlstate", None) == UNIQUE_VIOLATION:
            return None
        raise
