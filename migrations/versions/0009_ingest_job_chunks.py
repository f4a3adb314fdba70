"""Ingest jobs stage their raw items in chunks: ``ingest_job_chunks`` holds consecutive items of a job
serialised together (a few hundred a row: :mod:`app.items.jobs_chunks`) in place of ``ingest_job_items``' one
row an item, so that staging, reading back and deleting cost per chunk.

Items a job had staged under the old layout are converted (chunks of consecutive seqs, the same items),
so an unfinished job resumes; the downgrade converts them back.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby

import sqlalchemy as sa
from alembic import op

from app.items.jobs_chunks import Staged, group, pack, unpack

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ITEMS = sa.table(
    "ingest_job_items",
    sa.column("job_id", ID),
    sa.column("seq", sa.Integer()),
    sa.column("external_id", sa.Text()),
    sa.column("text", sa.Text()),
    sa.column("data", sa.LargeBinary()),
    sa.column("label", sa.JSON()),
)
CHUNKS = sa.table(
    "ingest_job_chunks",
    sa.column("job_id", ID),
    sa.column("seq", sa.Integer()),
    sa.column("n", sa.Integer()),
    sa.column("data", sa.LargeBinary()),
)


def upgrade() -> None:
    op.create_table(
        "ingest_job_chunks",
        sa.Column("job_id", ID, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["ingest_jobs.id"],
            name=op.f("fk_ingest_job_chunks_job_id_ingest_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", "seq", name=op.f("pk_ingest_job_chunks")),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(ITEMS.c.job_id, ITEMS.c.seq, ITEMS.c.external_id, ITEMS.c.text, ITEMS.c.data, ITEMS.c.label)
        .order_by(ITEMS.c.job_id, ITEMS.c.seq)
    )  # fmt: skip
    for job_id, job_rows in groupby(rows, key=lambda row: row[0]):
        for part in group(Staged(*row[1:]) for row in job_rows):
            chunk = {"job_id": job_id, "seq": part[0].seq, "n": len(part), "data": pack(part)}
            connection.execute(CHUNKS.insert(), [chunk])
    op.drop_table("ingest_job_items")


def downgrade() -> None:
    op.create_table(
        "ingest_job_items",
        sa.Column("job_id", ID, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=True),
        sa.Column("label", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["ingest_jobs.id"],
            name=op.f("fk_ingest_job_items_job_id_ingest_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", "seq", name=op.f("pk_ingest_job_items")),
    )
    connection = op.get_bind()
    chunks = connection.execute(
        sa.select(CHUNKS.c.job_id, CHUNKS.c.seq, CHUNKS.c.data).order_by(CHUNKS.c.job_id, CHUNKS.c.seq)
    )
    for job_id, seq, data in chunks:
        items = [{"job_id": job_id, **item._asdict()} for item in unpack(seq, data)]
        connection.execute(ITEMS.insert(), items)
    op.drop_table("ingest_job_chunks")
