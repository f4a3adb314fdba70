"""API keys scoped to projects (admin keys see every project), and audits of auto-labels.

- ``api_keys.is_admin``: keys made before this revision could use every project, so they stay admin.
- ``api_key_projects``: the projects a non-admin key may use (rows go with the key or the project).
- ``items.role`` and ``queries.purpose`` accept ``audit``: auto-labeled items sampled for human review.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

ROLES_BEFORE = "role IN ('pool', 'validation', 'train', 'removed')"
ROLES_AFTER = "role IN ('pool', 'validation', 'train', 'removed', 'audit')"
PURPOSES_BEFORE = "purpose IN ('validation', 'training')"
PURPOSES_AFTER = "purpose IN ('validation', 'training', 'audit')"


def _replace_check(table: str, name: str, condition: str) -> None:
    """Swap a CHECK constraint (SQLite rebuilds the table: batch mode)."""
    with op.batch_alter_table(table) as batch:
        batch.drop_constraint(op.f(f"ck_{table}_{name}"), type_="check")
        batch.create_check_constraint(op.f(f"ck_{table}_{name}"), sa.text(condition))


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.true()))
    op.create_table(
        "api_key_projects",
        sa.Column("key_id", Id, nullable=False),
        sa.Column("project_id", Id, nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"], ["api_keys.id"], ondelete="CASCADE", name=op.f("fk_api_key_projects_key_id_api_keys")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            ondelete="CASCADE",
            name=op.f("fk_api_key_projects_project_id_projects"),
        ),
        sa.PrimaryKeyConstraint("key_id", "project_id", name=op.f("pk_api_key_projects")),
    )
    op.create_index("ix_api_key_projects_project_id", "api_key_projects", ["project_id"])
    _replace_check("items", "role", ROLES_AFTER)
    _replace_check("queries", "purpose", PURPOSES_AFTER)


def downgrade() -> None:
    op.execute("DELETE FROM queries WHERE purpose = 'audit'")
    op.execute("UPDATE items SET role = 'pool' WHERE role = 'audit'")
    _replace_check("queries", "purpose", PURPOSES_BEFORE)
    _replace_check("items", "role", ROLES_BEFORE)
    op.drop_index("ix_api_key_projects_project_id", table_name="api_key_projects")
    op.drop_table("api_key_projects")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("is_admin")
