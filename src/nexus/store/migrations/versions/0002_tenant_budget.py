"""A tenant's budget shared by every process: its spend and the holds of calls in flight.

The account row of a tenant is created on first use from the calls its runs
recorded before (``Store.tenant_spend``), so a home migrated from 0001 keeps
its history; downgrading drops both tables and nothing recorded in the log.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_accounts",
        sa.Column("tenant", sa.String(200), primary_key=True),
        sa.Column("usd", sa.Text, nullable=False),
        sa.Column("tokens", sa.Integer, nullable=False),
        sa.Column("tool_calls", sa.Integer, nullable=False),
    )
    op.create_table(
        "tenant_holds",
        sa.Column("hold_id", sa.String(26), primary_key=True),
        sa.Column("tenant", sa.String(200), nullable=False),
        sa.Column("run_id", sa.String(26), nullable=False),
        sa.Column("usd", sa.Text, nullable=False),
        sa.Column("tokens", sa.Integer, nullable=False),
        sa.Column("tool_calls", sa.Integer, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_tenant_holds_tenant", "tenant_holds", ["tenant", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_tenant_holds_tenant", table_name="tenant_holds")
    op.drop_table("tenant_holds")
    op.drop_table("tenant_accounts")
