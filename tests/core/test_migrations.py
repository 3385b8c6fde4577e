"""Migrations go up, down and up again, and agree with the models."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import app.models  # noqa: F401 - every table on the metadata
from app.core.db import Base
from app.core.embedded import EmbeddedPostgres
from app.core.migrations import downgrade, upgrade


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection)
    return list(compare_metadata(context, Base.metadata))


async def _tables(url: str) -> tuple[set[str], list[Any]]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(c.dialect.get_table_names(c)))
            diff = await conn.run_sync(_differences)
    finally:
        await engine.dispose()
    return names, diff


async def test_upgrade_downgrade_upgrade_and_models_agree(pg_server: EmbeddedPostgres) -> None:
    name = f"closeloop_migrations_{os.getpid()}"
    url = pg_server.create_database(name, drop_first=True)
    try:
        # Alembic's env.py runs its own event loop, so it goes to a thread.
        await asyncio.to_thread(upgrade, url)
        await asyncio.to_thread(downgrade, url, "base")
        tables, _ = await _tables(url)
        assert tables <= {"alembic_version"}
        await asyncio.to_thread(upgrade, url)
        tables, diff = await _tables(url)
        assert {"api_key", "feedback"} <= tables
        assert diff == [], f"models and migrations differ: {diff}"
    finally:
        pg_server.drop_database(name)
