"""Alembic environment, async (asyncpg).

The URL comes from `closeloop migrate` (set on the config), else FEEDBACK_DATABASE_URL; the
connection honours FEEDBACK_DATABASE_POOLER as the service's own do. A caller that already holds
a connection (the tests) passes it in `config.attributes["connection"]`.

The whole run is one transaction (Alembic's default on PostgreSQL; not one per migration), and it
first takes a transaction-level advisory lock: processes started at once on a fresh database (a
rollout, several `serve` and `worker`) migrate one after the other, and the later ones find
nothing left to do. A transaction lock, not a session one, so it holds behind PgBouncer in
transaction mode too.
"""

import asyncio
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import app.models  # noqa: F401 - registers every table on the metadata
from app.core.config import Settings
from app.core.db import Base, pooled_connect_args

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata

# The key of the migrations' advisory lock (any fixed bigint; advisory locks are per database).
MIGRATION_LOCK_KEY = 0x636C6F73656C6F6F  # "closeloo"


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or Settings().database_url
    if not url:
        raise SystemExit(
            "No database URL: set FEEDBACK_DATABASE_URL, or run `closeloop migrate`, which also "
            "knows the embedded database."
        )
    return url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _connect_args() -> dict[str, Any]:
    """Behind PgBouncer in transaction mode: no statement cache, prepared statements named
    uniquely (a run's `__asyncpg_stmt_1__` would meet the last run's on a server connection)
    and no startup parameters, as `Database.connect` does for the service. No timeouts either
    way: a migration may rightly run longer than a request."""
    pooler = Settings().database_pooler  # from the environment, as the service reads it
    return pooled_connect_args() if pooler == "pgbouncer" else {}


def do_run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection, target_metadata=target_metadata, transaction_per_migration=False
    )
    with context.begin_transaction():
        # Before Alembic reads the current revision, and held until the run commits.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = create_async_engine(_url(), poolclass=NullPool, connect_args=_connect_args())
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
        await connection.commit()
    await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
    else:
        asyncio.run(run_async_migrations())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
