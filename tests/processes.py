"""`closeloop serve` as a real process on a database of its own, where processes matter."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

from app.core.db import Database, asyncpg_dsn
from app.core.embedded import EmbeddedPostgres
from app.core.migrations import upgrade
from tests.builders import eventually

CLOSELOOP = str(Path(sys.executable).parent / "closeloop")


@asynccontextmanager
async def own_database(pg_server: EmbeddedPostgres, revision: str = "head") -> AsyncIterator[str]:
    """A fresh database migrated to `revision` (its URL), dropped afterwards: what the
    processes (or a migration's test) commit stays out of the other tests' way."""
    name = f"closeloop_own_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = pg_server.create_database(name, drop_first=True)
    try:
        # Alembic's env.py runs its own event loop, so it goes to a thread.
        await asyncio.to_thread(upgrade, url, revision)
        yield url
    finally:
        pg_server.drop_database(name)


@asynccontextmanager
async def driver_connection(url: str) -> AsyncIterator[asyncpg.Connection]:
    """One asyncpg connection to the database at `url` (a SQLAlchemy URL), closed afterwards:
    for tests that drive a database below the app (migrations)."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        yield conn
    finally:
        await conn.close()


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[Database]:
    database = await Database.connect(url, pool_size=2)
    try:
        yield database
    finally:
        await database.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Served:
    base_url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_lines(self) -> list[str]:
        return self.log.read_text(encoding="utf-8", errors="replace").splitlines()


def environment(url: str, **settings: str) -> dict[str, str]:
    """This environment without FEEDBACK_ settings, then these (lower case, no prefix)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDBACK_")}
    env.update(FEEDBACK_DATABASE_URL=url)
    env.update({f"FEEDBACK_{name.upper()}": value for name, value in settings.items()})
    return env


@contextmanager
def running(
    arguments: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """`closeloop <arguments>`, its stderr in `log`; stopped by SIGTERM when the block ends."""
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [CLOSELOOP, *arguments], env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


@contextmanager
def serve(url: str, log: Path, **settings: str) -> Iterator[Served]:
    """`closeloop serve` on a free loopback port, with these FEEDBACK_ settings (lower case,
    without the prefix), its stderr in `log`; stopped by SIGTERM when the block ends."""
    port = free_port()
    with running(["serve", "--port", str(port)], environment(url, **settings), log) as process:
        yield Served(f"http://127.0.0.1:{port}", process, log)


@contextmanager
def worker(url: str, log: Path, **settings: str) -> Iterator[subprocess.Popen[bytes]]:
    """`closeloop worker` with these FEEDBACK_ settings; stopped by SIGTERM at the end."""
    with running(["worker"], environment(url, **settings), log) as process:
        yield process


async def ready(client: httpx.AsyncClient, served: Served, within: float = 60) -> None:
    async def answers() -> bool:
        assert served.process.poll() is None, "\n".join(served.log_lines()[-30:])
        try:
            return (await client.get(f"{served.base_url}/readyz", timeout=2)).status_code == 200
        except httpx.TransportError:
            return False

    await eventually(answers, within=within)
