"""``auto_labels`` without the foreign keys to ``items`` and ``rounds`` (the one to ``projects`` stays).

Why: writing a round's auto-labels is the bulk of a large round's database time, and it was held down by
the table's foreign-key checks. At 1M rows (``bench/scale_autolabels.py``, BENCHMARKS.md "Scale") a plain
binary COPY into ``auto_labels`` took 36.4 s of PostgreSQL CPU with its three checks, 10.8 s with none: each
check is a query per row, and the one on ``items`` also locks the item row (``FOR KEY SHARE``), which
dirties every page of the (1.5 GB at 1M × 384 float32) items table and writes it to the WAL. After this
revision, in one run: 19.5 s of PostgreSQL CPU with the two keys put back, 8.7 s without them.

Why it is safe: items and rounds are only ever deleted with their project (no code path deletes a single
item or round: items leave the pool by their ``role``, rounds by their ``status``), and the project's
``ON DELETE CASCADE`` on ``auto_labels.project_id`` stays, so deleting a project still removes its
auto-labels. The writer only writes ids it has just read in the same transaction, and that FK still
rejects rows of a project deleted meanwhile.

SQLite: the same change, in batch mode (the table is copied), so that one schema, the models', holds on
both databases; SQLite serves small projects, so the copy is cheap and its checks never mattered.

Downgrade: rows whose item or round no longer exists are deleted first (they could not satisfy the
restored constraints), then both foreign keys come back with ``ON DELETE CASCADE`` as in 0001.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DROPPED = (("item_id", "items"), ("round_id", "rounds"))
"""(column, referred table) of the foreign keys this revision drops."""

ORPHANS = (
    "DELETE FROM auto_labels WHERE "
    "NOT EXISTS (SELECT 1 FROM items WHERE items.id = auto_labels.item_id) "
    "OR NOT EXISTS (SELECT 1 FROM rounds WHERE rounds.id = auto_labels.round_id)"
)


def upgrade() -> None:
    with op.batch_alter_table("auto_labels") as batch:
        for column, table in DROPPED:
            batch.drop_constraint(op.f(f"fk_auto_labels_{column}_{table}"), type_="foreignkey")


def downgrade() -> None:
    op.execute(ORPHANS)
    with op.batch_alter_table("auto_labels") as batch:
        for column, table in DROPPED:
            batch.create_foreign_key(
                op.f(f"fk_auto_labels_{column}_{table}"), table, [column], ["id"], ondelete="CASCADE"
            )
