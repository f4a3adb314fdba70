"""Initial schema: projects, items, ground truth, human labels, rounds, auto-labels, queries, API keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)
ACTIVE = sa.text("status IN ('queued', 'running')")


def _fk(column: str, table: str, ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{table}.id"], ondelete=ondelete)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", Id, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("revoked_at", Timestamp, nullable=True),
    )
    op.create_table(
        "projects",
        sa.Column("id", Id, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("classes", sa.JSON(), nullable=False),
        sa.Column("data_kind", sa.String(16), nullable=False),
        sa.Column("input_shape", sa.JSON(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("seed", Id, nullable=False),
        sa.Column("sets_drawn_at", Timestamp, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.CheckConstraint("data_kind IN ('features', 'image')", name="data_kind"),
    )
    op.create_table(
        "items",
        sa.Column("id", Id, primary_key=True),
        sa.Column("project_id", Id, nullable=False),
        sa.Column("external_id", sa.String(255), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        _fk("project_id", "projects"),
        sa.UniqueConstraint("project_id", "external_id"),
        sa.CheckConstraint("role IN ('pool', 'validation', 'train', 'removed')", name="role"),
    )
    op.create_index("ix_items_project_id_role_id", "items", ["project_id", "role", "id"])
    op.create_table(
        "ground_truth",
        sa.Column("item_id", Id, primary_key=True),
        sa.Column("label", sa.Integer(), nullable=False),
        _fk("item_id", "items"),
    )
    op.create_table(
        "human_labels",
        sa.Column("id", Id, primary_key=True),
        sa.Column("project_id", Id, nullable=False),
        sa.Column("item_id", Id, nullable=False, unique=True),
        sa.Column("label", sa.Integer(), nullable=False),
        sa.Column("distribution", sa.JSON(), nullable=True),
        sa.Column("votes", sa.JSON(), nullable=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        _fk("project_id", "projects"),
        _fk("item_id", "items"),
    )
    op.create_index("ix_human_labels_project_id_id", "human_labels", ["project_id", "id"])
    op.create_table(
        "rounds",
        sa.Column("id", Id, primary_key=True),
        sa.Column("project_id", Id, nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stage", sa.String(32), nullable=True),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("n_queries", sa.Integer(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("model_version", sa.String(128), nullable=True),
        sa.Column("artifact_path", sa.String(1024), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("claim_token", sa.String(32), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("started_at", Timestamp, nullable=True),
        sa.Column("heartbeat_at", Timestamp, nullable=True),
        sa.Column("finished_at", Timestamp, nullable=True),
        _fk("project_id", "projects"),
        sa.UniqueConstraint("project_id", "index"),
        sa.CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')", name="status"),
    )
    op.create_index(
        "uq_rounds_project_id_active",
        "rounds",
        ["project_id"],
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )
    op.create_table(
        "auto_labels",
        sa.Column("id", Id, primary_key=True),
        sa.Column("project_id", Id, nullable=False),
        sa.Column("item_id", Id, nullable=False),
        sa.Column("round_id", Id, nullable=False),
        sa.Column("label", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        _fk("project_id", "projects"),
        _fk("item_id", "items"),
        _fk("round_id", "rounds"),
        sa.UniqueConstraint("project_id", "item_id"),
    )
    op.create_index("ix_auto_labels_project_id_id", "auto_labels", ["project_id", "id"])
    op.create_index("ix_auto_labels_round_id_id", "auto_labels", ["round_id", "id"])
    op.create_index("ix_auto_labels_project_id_label_id", "auto_labels", ["project_id", "label", "id"])
    op.create_table(
        "queries",
        sa.Column("id", Id, primary_key=True),
        sa.Column("project_id", Id, nullable=False),
        sa.Column("item_id", Id, nullable=False, unique=True),
        sa.Column("round_id", Id, nullable=True),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("answered", sa.Boolean(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        _fk("project_id", "projects"),
        _fk("item_id", "items"),
        _fk("round_id", "rounds", ondelete="SET NULL"),
        sa.CheckConstraint("purpose IN ('validation', 'training')", name="purpose"),
    )
    op.create_index("ix_queries_project_id_answered_id", "queries", ["project_id", "answered", "id"])


def downgrade() -> None:
    for table in ("queries", "auto_labels", "rounds", "human_labels", "ground_truth", "items", "projects"):
        op.drop_table(table)
    op.drop_table("api_keys")
