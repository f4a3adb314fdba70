"""SQL for the texts of text items (``item_texts``, keyed by project and external id)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.bulk import chunks, dialect
from app.db.models import Item, ItemText

INSERT_JSON = (
    "INSERT INTO item_texts (project_id, external_id, text) "
    "SELECT ?, json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]') FROM json_each(?) j "
    "WHERE true ON CONFLICT (project_id, external_id) DO NOTHING"
)
INSERT_ARRAYS = (
    "INSERT INTO item_texts (project_id, external_id, text) "
    "SELECT %s, u.external_id, u.text FROM unnest(%s::text[], %s::text[]) AS u(external_id, text) "
    "ON CONFLICT (project_id, external_id) DO NOTHING"
)
ROWS_PER_CALL = 5_000


def add_texts(session: Session, project_id: int, external_ids: Sequence[str], texts: Sequence[str]) -> None:
    """Store the texts of items ``external_ids`` (those that have one already keep it), in the caller's
    transaction (the items themselves are written in it too). On the driver's cursor, one statement a
    chunk with no Python between rows: PostgreSQL takes it as two arrays, SQLite as one JSON array of
    [id, text] pairs (an ``executemany`` took the GIL back after each row: an ingest job's encoding
    thread and this insert waited for each other, ~3 µs a text)."""
    postgres = dialect(session) == "postgresql"
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        for start in range(0, len(external_ids), ROWS_PER_CALL):
            ids = list(external_ids[start : start + ROWS_PER_CALL])
            part = list(texts[start : start + ROWS_PER_CALL])
            if postgres:
                cursor.execute(INSERT_ARRAYS, (project_id, ids, part))
            else:
                pairs = json.dumps(list(zip(ids, part, strict=True)), ensure_ascii=False)
                cursor.execute(INSERT_JSON, (project_id, pairs))
    finally:
        cursor.close()


def texts_by_item_id(session: Session, project_id: int, item_ids: Sequence[int]) -> dict[int, str]:
    """{item id: text} of those of ``item_ids`` that have a text."""
    found: dict[int, str] = {}
    for part in chunks(list(item_ids)):
        rows = session.execute(
            select(Item.id, ItemText.text)
            .join(
                ItemText,
                (ItemText.project_id == Item.project_id) & (ItemText.external_id == Item.external_id),
            )
            .where(Item.project_id == project_id, Item.id.in_(part))
        )
        found.update({item_id: t for item_id, t in rows})
    return found


def page(session: Session, project_id: int, *, after_id: int, limit: int) -> list[tuple[int, str, str]]:
    """(item id, external id, text) of the project's text items with id > ``after_id``, by id."""
    rows = session.execute(
        select(Item.id, Item.external_id, ItemText.text)
        .join(ItemText, (ItemText.project_id == Item.project_id) & (ItemText.external_id == Item.external_id))
        .where(Item.project_id == project_id, Item.id > after_id)
        .order_by(Item.id)
        .limit(limit)
    )
    return [(int(i), str(e), str(t)) for i, e, t in rows]
