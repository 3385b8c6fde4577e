"""The benchmarks' PostgreSQL: the embedded server, a fresh database per run, plain SQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg

from app.core.db import asyncpg_dsn
from app.core.embedded import EmbeddedPostgres
from bench.common import DATA_DIR

# -- PostgreSQL ---------------------------------------------------------------------------------


@contextmanager
def embedded_postgres(root: Path = DATA_DIR) -> Iterator[EmbeddedPostgres]:
    """The benchmarks' embedded server with its default (durable) settings, held while in use."""
    server = EmbeddedPostgres(root)
    server.acquire()
    try:
        yield server
    finally:
        server.release()


@contextmanager
def fresh_database(server: EmbeddedPostgres, name: str) -> Iterator[str]:
    """An empty database for one run, dropped afterwards; yields its SQLAlchemy URL."""
    url = server.create_database(name, drop_first=True)
    try:
        yield url
    finally:
        server.drop_database(name)


def checkpoint(url: str) -> None:
    """Write dirty pages out now, so no timed checkpoint lands inside a measured run."""

    async def run() -> None:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            await conn.execute("CHECKPOINT")
        finally:
            await conn.close()

    asyncio.run(run())


def run_sql(url: str, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[asyncpg.Record]:
    """Run (sql, arguments) statements in order on one new connection, each in its own
    transaction; answer the rows of the last one."""

    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            for sql, arguments in statements[:-1]:
                await conn.execute(sql, *arguments)
            sql, arguments = statements[-1]
            rows: list[asyncpg.Record] = await conn.fetch(sql, *arguments)
        finally:
            await conn.close()
        return rows

    return asyncio.run(run())


def postgres_version(url: str) -> str:
    async def run() -> str:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            version: str = await conn.fetchval("SHOW server_version")
        finally:
            await conn.close()
        return version

    return asyncio.run(run())
