"""Label Studio two-way sync: the connection's Label Studio URL, project and (encrypted) access token, the
labeled object's data key read at ``/setup``; the tasks tbal knows in Label Studio; the events (refusals,
skipped tasks, failed syncs) that the connection's status shows.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("label_studio_connections") as batch:
        batch.add_column(sa.Column("ls_url", sa.String(2048), nullable=True))
        batch.add_column(sa.Column("ls_project", Id, nullable=True))
        batch.add_column(sa.Column("ls_token", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("auto_labels_as", sa.String(16), nullable=False, server_default="predictions")
        )
        batch.add_column(sa.Column("data_key", sa.String(64), nullable=True))
        batch.add_column(sa.Column("object_tag", sa.String(32), nullable=True))
        batch.add_column(sa.Column("last_sync_at", Timestamp, nullable=True))
    op.create_table(
        "label_studio_tasks",
        sa.Column("id", Id, primary_key=True),
        sa.Column("project_id", Id, nullable=False),
        sa.Column("item_id", Id, nullable=False),
        sa.Column("task_id", Id, nullable=False),
        sa.Column("purpose", sa.String(16), nullable=True),
        sa.Column("auto_label_round", Id, nullable=True),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], ondelete="CASCADE"),
        sa.UniqueConstraint("project_id", "item_id"),
        sa.UniqueConstraint("project_id", "task_id"),
    )
    op.create_table(
        "label_studio_events",
        sa.Column("id", Id, primary_key=True),
        sa.Column("project_id", Id, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
    )
    op.create_index("ix_label_studio_events_project_id_id", "label_studio_events", ["project_id", "id"])


def downgrade() -> None:
    op.drop_table("label_studio_events")
    op.drop_table("label_studio_tasks")
    with op.batch_alter_table("label_studio_connections") as batch:
        for name in (
            "last_sync_at",
            "object_tag",
            "data_key",
            "auto_labels_as",
            "ls_token",
            "ls_project",
            "ls_url",
        ):
            batch.drop_column(name)
