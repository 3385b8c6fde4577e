"""Migrations go up, down and up again, and agree with the models."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import asyncpg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import app.models  # noqa: F401 - every table on the metadata
from app.connectors.service import connector_key_id
from app.core.db import Base, asyncpg_dsn
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


async def test_connector_items_move_to_their_tool_and_sources_id_and_back(
    pg_server: EmbeddedPostgres,
) -> None:
    """connector_key_ids: a connector's items, stored under its row's id, belong to the id of
    its tool and source (connector_key_id), and go back on downgrade; other items stay."""
    name = f"closeloop_migration_keys_{os.getpid()}"
    url = pg_server.create_database(name, drop_first=True)
    connector_id, other_key = uuid.uuid4(), uuid.uuid4()
    insert = (
        "INSERT INTO feedback (id, source, channel, api_key_id, sentiment, submitted_at, "
        "received_at) VALUES ($1, 'nps-email', 'email', $2, 'neutral', now(), now())"
    )
    try:
        await asyncio.to_thread(upgrade, url)
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            await conn.execute(
                "INSERT INTO connector (id, tool, source, secret, created_by, created_at, "
                "updated_at) VALUES ($1, 'delighted', 'nps-email', 's', 'test', now(), now())",
                connector_id,
            )
            # As the head stores it: under the tool and source's id.
            await conn.execute(insert, uuid.uuid4(), connector_key_id("delighted", "nps-email"))
            await conn.execute(insert, uuid.uuid4(), other_key)
            owners = "SELECT api_key_id FROM feedback ORDER BY api_key_id = $1"
            await asyncio.to_thread(downgrade, url, "report_case_facts")
            assert [r[0] for r in await conn.fetch(owners, other_key)] == [
                connector_id,
                other_key,
            ]
            await asyncio.to_thread(upgrade, url)
            assert [r[0] for r in await conn.fetch(owners, other_key)] == [
                connector_key_id("delighted", "nps-email"),
                other_key,
            ]
        finally:
            await conn.close()
    finally:
        pg_server.drop_database(name)
