"""Settings the service chose: ``projects.followed`` lists the names of a project's settings that the
service filled in rather than the user (``preset`` by its data kind, ``seed_size`` / ``validation_floor``
by its budgets, ``encoder`` by its model), so that they follow what they followed when the user changes
it (a lower ``label_budget`` moves a text project's chosen preset; a new preset moves the counts that
followed the old one) and a value the user set stays, even where it equals the followed one.

Existing projects keep NULL: the service cannot tell what they chose, and takes a count equal to what
the preset gives as following it, as before.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("projects", sa.Column("followed", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("followed")
