"""A real PgBouncer in transaction mode in front of the test server, when one is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from sqlalchemy.engine import URL, make_url

from app.core.embedded import EmbeddedPostgres
from tests.processes import free_port

PGBOUNCER = shutil.which("pgbouncer") or (
    "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
)
MISSING = (
    "pgbouncer is not installed (Debian: apt-get install pgbouncer; .ci/run installs it): "
    "the flows through PgBouncer in transaction mode were NOT tested"
)


@contextmanager
def pgbouncer(pg_server: EmbeddedPostgres, url: str, log: Path) -> Iterator[str]:
    """PgBouncer (transaction mode, 10 server connections) on a free loopback port in front of
    the database of `url`, its log in `log`; answers the URL that goes through it."""
    assert PGBOUNCER is not None
    with (
        tempfile.TemporaryDirectory(prefix="closeloop-pgbouncer-") as directory,
        log.open("wb") as stderr,
    ):
        yield from _run(pg_server, make_url(url), Path(directory), stderr, log)


def _run(
    pg_server: EmbeddedPostgres, target: URL, workdir: Path, stderr: IO[bytes], log: Path
) -> Iterator[str]:
    assert PGBOUNCER is not None
    password = pg_server.password()
    port = free_port()
    server = (
        f"host={pg_server.socket_dir} dbname={target.database} user={target.username} "
        f"password={password}"
    )
    (workdir / "userlist.txt").write_text(f'"{target.username}" "{password}"\n')
    (workdir / "pgbouncer.ini").write_text(
        f"""[databases]
{target.database} = {server}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = plain
auth_file = {workdir / "userlist.txt"}
pool_mode = transaction
default_pool_size = 10
max_client_conn = 500
"""
    )
    command = [PGBOUNCER, str(workdir / "pgbouncer.ini")]
    if os.geteuid() == 0:
        # PgBouncer will not run as root; the server's own user may enter its socket directory.
        owner = pg_server.server_owner
        os.chown(workdir, *owner)
        for child in workdir.iterdir():
            os.chown(child, *owner)
        command[1:1] = ["-u", "embedded_postgres"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 10
        while not _listening(port):
            assert process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, "pgbouncer did not start"
            time.sleep(0.05)
        yield target.set(host="127.0.0.1", port=port, query={}).render_as_string(
            hide_password=False
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
