"""Pinned base configuration: ``projects.base_config`` holds the preset's (or the library's default)
configuration as it was when the project took it, so that a later tbal release changing a preset or a
default does not change a running project's round plan and δ schedule.

Existing projects keep NULL: they resolve their preset as the installed library defines it, as before.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("projects", sa.Column("base_config", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("base_config")
