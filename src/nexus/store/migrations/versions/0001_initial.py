"""Initial schema: runs, events, commands.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(26), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("plan_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.Column("source", sa.Text, nullable=True),
        sa.Column("workspace", sa.Text, nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_host", sa.String(255), nullable=True),
        sa.Column("lease_pid", sa.Integer, nullable=True),
        sa.Column("lease_heartbeat", sa.Float, nullable=True),
    )
    op.create_table(
        "events",
        sa.Column("run_id", sa.String(26), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("task", sa.String(200), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_index("ix_events_run_task", "events", ["run_id", "task"])
    op.create_table(
        "commands",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(26), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
    )
    op.create_index("ix_commands_run_id", "commands", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_commands_run_id", table_name="commands")
    op.drop_table("commands")
    op.drop_index("ix_events_run_task", table_name="events")
    op.drop_table("events")
    op.drop_table("runs")
