"""The embedded PostgreSQL is reachable only by the service (SPEC §7): its socket directory
is the server's user's alone (0700, never a world-writable fallback), it takes connections
with its password only (SCRAM-SHA-256), the password is kept in the data folder for the
invoking user alone (0600, outside pgdata), and a data folder of an earlier version, which
trusted every local connection, is brought to this in place on its next start.

The test suite's own server (`pg_server`, tests/conftest.py) is one of these and is checked as
it is; the upgrade and the long-path fallback start servers of their own in temporary folders.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from app.core.db import asyncpg_dsn
from app.core.embedded import HBA, SUPERUSER, EmbeddedPostgres
from app.core.embedded_host import SERVICE_USER, EmbeddedPostgresError, private_directory


def server_uid() -> int:
    """The user the server runs as: the service user when the tests run as root."""
    return pwd.getpwnam(SERVICE_USER).pw_uid if os.geteuid() == 0 else os.geteuid()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


async def connects(url: str) -> bool:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return bool(await conn.fetchval("SELECT true"))
    finally:
        await conn.close()


@pytest.fixture
def server_at(tmp_path: Path) -> Iterator[list[EmbeddedPostgres]]:
    """Servers a test starts in its temporary folders, stopped afterwards whatever happened."""
    servers: list[EmbeddedPostgres] = []
    yield servers
    for server in servers:
        if server.is_running():
            server.release()
        if not server.socket_dir.is_relative_to(server.root):
            shutil.rmtree(server.socket_dir, ignore_errors=True)


# -- the test suite's own server ----------------------------------------------------------------


def test_the_socket_directory_is_the_servers_users_alone(pg_server: EmbeddedPostgres) -> None:
    info = pg_server.socket_dir.lstat()
    assert stat.S_ISDIR(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o700
    assert info.st_uid == server_uid()


def test_the_password_is_kept_for_the_invoking_user_alone_outside_pgdata(
    pg_server: EmbeddedPostgres, database_url: str
) -> None:
    password_file = pg_server.password_file
    assert password_file.parent == pg_server.root
    assert not password_file.is_relative_to(pg_server.pgdata)
    assert mode(password_file) == 0o600
    assert password_file.lstat().st_uid == os.geteuid()
    password = password_file.read_text().strip()
    assert len(password) >= 32
    assert make_url(database_url).password == password


def test_only_password_connections_on_the_socket_are_configured(
    pg_server: EmbeddedPostgres,
) -> None:
    hba = pg_server.pgdata / "pg_hba.conf"
    assert hba.read_text() == HBA
    rules = [line.split() for line in HBA.splitlines() if line and not line.startswith("#")]
    assert rules == [["local", "all", "all", "scram-sha-256"]]


async def test_a_connection_without_the_password_is_refused(
    pg_server: EmbeddedPostgres, database_url: str
) -> None:
    database = make_url(database_url).database
    for password in (None, "", "not-the-password"):
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(
                host=str(pg_server.socket_dir),
                user=SUPERUSER,
                database=database,
                password=password,
            )
    assert await connects(database_url)


# -- a data folder of an earlier version --------------------------------------------------------


async def test_a_trust_data_folder_is_upgraded_in_place_on_its_next_start(
    tmp_path: Path, server_at: list[EmbeddedPostgres]
) -> None:
    server = EmbeddedPostgres(tmp_path / "legacy")
    server_at.append(server)
    # The data folder as earlier versions left it: trust for every local connection, a socket
    # directory others could enter, no password anywhere, some data in it.
    server._prepare_directories()
    server._run(
        [
            "initdb",
            "-D",
            str(server.pgdata),
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "-U",
            SUPERUSER,
        ],
        timeout=120,
    )
    server.socket_dir.chmod(0o755)
    server._start()
    socket = str(server.socket_dir)
    conn = await asyncpg.connect(host=socket, user=SUPERUSER, database="postgres")
    await conn.execute("CREATE DATABASE closeloop")
    await conn.close()
    conn = await asyncpg.connect(host=socket, user=SUPERUSER, database="closeloop")
    await conn.execute("CREATE TABLE kept (note text); INSERT INTO kept VALUES ('from before')")
    await conn.close()
    server._stop()
    assert not server.password_file.exists()

    url = server.acquire()

    assert (server.pgdata / "pg_hba.conf").read_text() == HBA
    assert mode(server.socket_dir) == 0o700
    assert mode(server.password_file) == 0o600
    assert make_url(url).password == server.password_file.read_text().strip()
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(host=socket, user=SUPERUSER, database="closeloop")
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        assert await conn.fetchval("SELECT note FROM kept") == "from before"
    finally:
        await conn.close()
    server.release()
    assert not server.is_running()

    # And the next start of the upgraded folder is an ordinary one.
    assert server.acquire() == url
    assert await connects(url)
    server.release()


# -- a socket path too long for the data folder -------------------------------------------------


def long_root(tmp_path: Path) -> Path:
    root = tmp_path / ("d" * 100)
    assert not EmbeddedPostgres(root).socket_dir.is_relative_to(root)
    return root


async def test_a_socket_path_too_long_gets_a_private_directory_of_its_own(
    tmp_path: Path, server_at: list[EmbeddedPostgres]
) -> None:
    server = EmbeddedPostgres(long_root(tmp_path))
    server_at.append(server)
    url = server.acquire()
    assert server.socket_dir.parent == Path(tempfile.gettempdir())
    info = server.socket_dir.lstat()
    assert stat.S_ISDIR(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o700
    assert info.st_uid == server_uid()
    assert await asyncio.wait_for(connects(url), 30)


def test_a_symlink_where_the_socket_directory_goes_is_refused(
    tmp_path: Path, server_at: list[EmbeddedPostgres]
) -> None:
    server = EmbeddedPostgres(long_root(tmp_path))
    server_at.append(server)
    planted = tmp_path / "planted"
    planted.mkdir()
    planted.chmod(0o777)
    server.socket_dir.symlink_to(planted)
    try:
        with pytest.raises(EmbeddedPostgresError, match="not a directory"):
            server.acquire()
        assert not server.is_running()
        assert mode(planted) == 0o777
        assert list(planted.iterdir()) == []
    finally:
        server.socket_dir.unlink()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can make a directory another user's")
def test_another_users_directory_where_the_socket_directory_goes_is_refused(
    tmp_path: Path,
) -> None:
    planted = tmp_path / "planted"
    planted.mkdir(mode=0o777)
    nobody = pwd.getpwnam("nobody")
    os.chown(planted, nobody.pw_uid, nobody.pw_gid)
    with pytest.raises(EmbeddedPostgresError, match="belongs to another user"):
        private_directory(planted, (server_uid(), os.getegid()))
    assert planted.lstat().st_uid == nobody.pw_uid


def test_a_directory_of_ours_is_narrowed_to_its_owner(tmp_path: Path) -> None:
    ours = tmp_path / "ours"
    ours.mkdir(mode=0o755)
    private_directory(ours, (os.geteuid(), os.getegid()))
    assert mode(ours) == 0o700
    fresh = tmp_path / "fresh"
    private_directory(fresh, (os.geteuid(), os.getegid()))
    assert mode(fresh) == 0o700
    assert fresh.lstat().st_uid == os.geteuid()
