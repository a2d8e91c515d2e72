"""Tables shared by every SQL adapter (SQLAlchemy Core). Migrations live in ``migrations/``."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(26), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("plan_hash", String(64), nullable=False),
    Column("status", String(20), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    Column("source", Text, nullable=True),
    Column("workspace", Text, nullable=False),
    Column("events", Integer, nullable=False, default=0),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_host", String(255), nullable=True),
    Column("lease_pid", Integer, nullable=True),
    Column("lease_heartbeat", Float, nullable=True),
)

events = Table(
    "events",
    metadata,
    Column("run_id", String(26), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("type", String(40), nullable=False),
    Column("at", String(32), nullable=False),
    Column("task", String(200), nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("body", Text, nullable=False),
)
Index("ix_events_run_task", events.c.run_id, events.c.task)

commands = Table(
    "commands",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(26), nullable=False, index=True),
    Column("kind", String(40), nullable=False),
    Column("payload", Text, nullable=False),
)

# A tenant's shared budget (see ``Store.tenant_reserve``): what its runs spent,
# money as exact decimal text, and the holds of the calls in flight.
tenant_accounts = Table(
    "tenant_accounts",
    metadata,
    Column("tenant", String(200), primary_key=True),
    Column("usd", Text, nullable=False),
    Column("tokens", Integer, nullable=False),
    Column("tool_calls", Integer, nullable=False),
)

tenant_holds = Table(
    "tenant_holds",
    metadata,
    Column("hold_id", String(26), primary_key=True),
    Column("tenant", String(200), nullable=False),
    Column("run_id", String(26), nullable=False),
    Column("usd", Text, nullable=False),
    Column("tokens", Integer, nullable=False),
    Column("tool_calls", Integer, nullable=False),
    Column("expires_at", Float, nullable=False),
)
Index("ix_tenant_holds_tenant", tenant_holds.c.tenant, tenant_holds.c.expires_at)

# The signed audit log (see ``nexus.store.heads``): this store's id, and each
# run's last (seq, hash) signed with the home's audit key.
audit_store = Table(
    "audit_store",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("store_id", String(64), nullable=False),
)

audit_heads = Table(
    "audit_heads",
    metadata,
    Column("run_id", String(26), primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("signature", String(128), nullable=False),
)
