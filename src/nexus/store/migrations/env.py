"""Alembic environment: runs on the connection Nexus hands over in ``config.attributes``."""

from __future__ import annotations

from alembic import context

from nexus.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - Nexus always passes one
    raise RuntimeError("run Nexus migrations through nexus.store.migrate")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
