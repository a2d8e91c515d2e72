"""Signed run heads and the store's identity, for a signed, anchored audit log.

``audit_store`` holds one row: the id this database was created with (a
random UUID given here, so every migrated store has one). The signed heads
name it, and the store manifest kept outside the database in
``$NEXUS_HOME/keys`` records it, so a database swapped for another or
emptied is told apart from this one.

``audit_heads`` holds, per run, the last (seq, hash) of its chain and an
Ed25519 signature over them (see :mod:`nexus.security.signing`). Runs
recorded before this revision have no head until ``nexus audit sign`` (or
their next write) signs them; the event log itself is not touched, so old
runs verify and replay exactly as before. Downgrading drops both tables.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    store = op.create_table(
        "audit_store",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("store_id", sa.String(64), nullable=False),
    )
    op.bulk_insert(store, [{"id": 1, "store_id": uuid.uuid4().hex}])
    op.create_table(
        "audit_heads",
        sa.Column("run_id", sa.String(26), primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_heads")
    op.drop_table("audit_store")
