"""Label Studio: per-project connections (secret, task data fields) and the annotations behind labels.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "label_studio_connections",
        sa.Column("project_id", Id, primary_key=True),
        sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("secret_prefix", sa.String(16), nullable=False),
        sa.Column("data_field", sa.String(64), nullable=False),
        sa.Column("id_field", sa.String(64), nullable=False),
        sa.Column("from_name", sa.String(255), nullable=True),
        sa.Column("to_name", sa.String(255), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
    )
    op.create_table(
        "label_studio_annotations",
        sa.Column("id", Id, primary_key=True),
        sa.Column("project_id", Id, nullable=False),
        sa.Column("annotation_id", Id, nullable=False),
        sa.Column("task_id", Id, nullable=False),
        sa.Column("item_id", Id, nullable=False),
        sa.Column("annotator", sa.String(255), nullable=False),
        sa.Column("label", sa.Integer(), nullable=True),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], ondelete="CASCADE"),
        sa.UniqueConstraint("project_id", "annotation_id"),
    )
    op.create_index(
        "ix_label_studio_annotations_item_id_annotation_id",
        "label_studio_annotations",
        ["item_id", "annotation_id"],
    )


def downgrade() -> None:
    op.drop_table("label_studio_annotations")
    op.drop_table("label_studio_connections")
