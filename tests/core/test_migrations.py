"""Migrations go up, down and up again, and agree with the models."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
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
from app.core.migrations import downgrade, head_revision, upgrade
from tests.processes import driver_connection

ROOT = Path(__file__).resolve().parents[2]


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


# `upgrade(url)` in a process of its own, once told to go: imported and connected-ready first, so
# the runs meet in the database rather than being spread out by their start-up.
_UPGRADE_WHEN_TOLD = """
import sys
from app.core.migrations import upgrade
print("ready", flush=True)
sys.stdin.readline()
upgrade(sys.argv[1])
"""


def _upgrade_at_once(url: str, runs: int) -> list[tuple[int, str]]:
    """`runs` processes that each run upgrade(url), started together; their exit codes and
    stderr. (Processes, not threads: Alembic keeps its migration context module-wide.)"""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _UPGRADE_WHEN_TOLD, url],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(runs)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            assert process.stdout.readline() == "ready\n"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        return [(process.wait(timeout=120), process.communicate()[1]) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


async def test_concurrent_upgrades_of_a_fresh_database_take_turns(
    pg_server: EmbeddedPostgres,
) -> None:
    """Several processes started at once on a fresh database (serve and workers of a rollout)
    all migrate without error: one applies the migrations, the others wait for it (the run's
    advisory lock) and find nothing to do."""
    name = f"closeloop_migrations_race_{os.getpid()}"
    url = pg_server.create_database(name, drop_first=True)
    try:
        results = await asyncio.to_thread(_upgrade_at_once, url, 6)
        assert [code for code, _ in results] == [0] * 6, [err for code, err in results if code]
        async with driver_connection(url) as conn:
            versions = [
                row[0] for row in await conn.fetch("SELECT version_num FROM alembic_version")
            ]
        assert versions == [head_revision()]
        _, diff = await _tables(url)
        assert diff == [], f"models and migrations differ: {diff}"
    finally:
        pg_server.drop_database(name)
