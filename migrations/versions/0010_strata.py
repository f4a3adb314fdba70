"""Validation drawn inside a stratum (``loop.targeted_validation``; :mod:`tbal.plan`, "The stratum"): the
round before the certifying one fixes a stratum of the pool and draws validation items inside it; every
later round certifies and auto-labels inside it only. Two small tables, not columns on ``items``:

- ``strata``: one row per project whose round fixed its stratum (that round, the cut, how many items it
  drew inside it). The row says the stratum exists even when it has no member, which the plan needs
  (``RunState.stratum_drawn``) and an empty set of flags could not say.
- ``stratum_items``: its members (project, item) and ``targeted``, the validation items drawn inside it.
  Written once per project, in the stratum round's transaction, by one bulk insert; ``items`` (the
  largest table, written by every upload and every round) is left as it is. Items uploaded later have
  no row, so they are outside the stratum. No foreign key to ``items`` (as ``auto_labels`` since 0004):
  items are deleted only with their project, whose cascade reaches these rows through ``strata``.

The targeted items are queued as validation items (purpose ``validation``, with the round's id) but are
paid from ``validation_size``, not from ``label_budget``: the budget's count of top-ups leaves out the
queries whose item is ``targeted`` here.

Existing projects have no stratum (none could set ``targeted_validation`` before).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "strata",
        sa.Column("project_id", ID, nullable=False),
        sa.Column("round_id", ID, nullable=False),
        sa.Column("cut", sa.Float(), nullable=True),
        sa.Column("targeted", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_strata_project_id_projects"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["round_id"], ["rounds.id"], name=op.f("fk_strata_round_id_rounds"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_strata")),
    )
    op.create_table(
        "stratum_items",
        sa.Column("project_id", ID, nullable=False),
        sa.Column("item_id", ID, nullable=False),
        sa.Column("targeted", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["strata.project_id"],
            name=op.f("fk_stratum_items_project_id_strata"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "item_id", name=op.f("pk_stratum_items")),
    )


def downgrade() -> None:
    op.drop_table("stratum_items")
    op.drop_table("strata")
