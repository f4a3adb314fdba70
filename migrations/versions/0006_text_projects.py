"""Text projects: ``projects.data_kind`` accepts ``text``, and ``item_texts`` holds each text item's string.

A text project stores its encoder's features in ``items.data`` like a feature project; the string goes to
``item_texts`` keyed by (project_id, external_id), written in the item's transaction.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS_BEFORE = "data_kind IN ('features', 'image')"
KINDS_AFTER = "data_kind IN ('features', 'image', 'text')"


def _replace_check(condition: str) -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_constraint(op.f("ck_projects_data_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_projects_data_kind"), sa.text(condition))


def upgrade() -> None:
    _replace_check(KINDS_AFTER)
    op.create_table(
        "item_texts",
        sa.Column("project_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_item_texts_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "external_id", name=op.f("pk_item_texts")),
    )


def downgrade() -> None:
    op.drop_table("item_texts")
    op.execute("DELETE FROM projects WHERE data_kind = 'text'")
    _replace_check(KINDS_BEFORE)
