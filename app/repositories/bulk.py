"""Bulk-write helpers shared by the repositories: staging rows in a temporary table (binary ``COPY`` on
PostgreSQL, ``executemany`` on SQLite) so that the real writes are single set-based statements
(``INSERT ... SELECT ... ON CONFLICT DO NOTHING``), and chunking of id lists."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

ID_CHUNK = 5_000


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
    if not rows:
        return
    names = ", ".join(c for c, _, _ in columns)
    raw = session.connection().connection.driver_connection
    if dialect(session) == "postgresql":
        sql = f"COPY {name} ({names}) FROM STDIN (FORMAT BINARY)"
        with raw.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[union-attr]
            copy.set_types([pg for _, pg, _ in columns])
            for row in rows:
                copy.write_row(row)
    else:
        marks = ", ".join("?" for _ in columns)
        cursor = raw.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(f"INSERT INTO {name} ({names}) VALUES ({marks})", rows)
        finally:
            cursor.close()


def clear_stage(session: Session, name: str) -> None:
    verb = "TRUNCATE" if dialect(session) == "postgresql" else "DELETE FROM"
    session.execute(text(f"{verb} {name}"))
