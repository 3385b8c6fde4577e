"""The command line on a fresh data directory: serve, create-api-key, and the embedded server's
life (started by the first command, shared, stopped by the last, survives a crash)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from app.core.embedded import EmbeddedPostgres
from tests.builders import feedback_body

CLOSELOOP = str(Path(sys.executable).parent / "closeloop")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("closeloop-data")
    yield path
    server = EmbeddedPostgres(path)
    if server.is_running():  # a failed test must not leave a server behind
        server.release()
    # A holder still exiting (a served process the tests killed) keeps release() from stopping
    # it; the folder is the tests' own, so the server goes anyway.
    for _ in range(50):
        if not server.is_running():
            break
        time.sleep(0.1)
        server.release()


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDBACK_")}
    env["FEEDBACK_DATA_DIR"] = str(data_dir)
    return env


def _postgres_processes(data_dir: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info.get("cmdline") or []
        if process.info.get("name") == "postgres" and any(str(data_dir) in a for a in cmdline):
            found.append(process)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _create_key(data_dir: Path, *scopes: str) -> str:
    args = [CLOSELOOP, "create-api-key", "--name", "cli test"]
    for scope in scopes:
        args += ["--scope", scope]
    done = subprocess.run(args, env=_env(data_dir), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def _wait_ready(base: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "serve exited early"
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("serve did not become ready in time")


def _start_serve(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [CLOSELOOP, "serve", "--port", str(port)],
        env=_env(data_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_gone(data_dir: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while _postgres_processes(data_dir):
        assert time.monotonic() < deadline, "postgres is still running"
        time.sleep(0.1)


def test_create_api_key_alone_starts_and_stops_the_server(data_dir: Path) -> None:
    key = _create_key(data_dir, "admin")
    assert key.startswith("cl_")
    _wait_gone(data_dir)


def test_serve_takes_feedback_and_sigterm_stops_its_server(data_dir: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    serve = _start_serve(data_dir, port)
    try:
        _wait_ready(base, serve)
        # A second command beside the running service shares its database.
        key = _create_key(data_dir, "feedback:write", "feedback:read")
        assert _postgres_processes(data_dir), "create-api-key stopped the service's database"
        headers = {"Authorization": f"Bearer {key}"}
        posted = httpx.post(f"{base}/v1/feedback", json=feedback_body(), headers=headers)
        assert posted.status_code == 201
        read = httpx.get(f"{base}/v1/feedback/{posted.json()['id']}", headers=headers)
        assert read.json()["comment"] == feedback_body()["comment"]
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0
    finally:
        if serve.poll() is None:
            serve.kill()
    _wait_gone(data_dir)


def test_a_server_left_by_a_crash_is_reused_and_then_stopped(data_dir: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    crashed = _start_serve(data_dir, port)
    try:
        _wait_ready(base, crashed)
    finally:
        crashed.kill()
        crashed.wait(timeout=30)
    assert _postgres_processes(data_dir), "expected the crash to leave postgres running"

    serve = _start_serve(data_dir, port)
    try:
        _wait_ready(base, serve)
        serve.send_signal(signal.SIGINT)
        assert serve.wait(timeout=30) == 0
    finally:
        if serve.poll() is None:
            serve.kill()
    _wait_gone(data_dir)


def test_export_openapi_writes_the_document(tmp_path: Path) -> None:
    target = tmp_path / "openapi.json"
    done = subprocess.run(
        [CLOSELOOP, "export-openapi", "--output", str(target)],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert '"create_feedback"' in target.read_text()
    assert not _postgres_processes(tmp_path)


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        ("FEEDBACK_DB_POOL_SIZE=1", "FEEDBACK_DB_POOL_SIZE: Input should be greater than"),
        ("FEEDBACK_LOG_LEVEL=verbose", "FEEDBACK_LOG_LEVEL: Input should be 'debug'"),
        ("FEEDBACK_SECRET_KEY=not-a-fernet-key", "FEEDBACK_SECRET_KEY: Value error"),
    ],
)
def test_a_bad_setting_is_named_without_a_traceback(
    tmp_path: Path, setting: str, said: str
) -> None:
    """An operator's typo ends the command with the variable named, not 19 lines of traceback
    (and not the value, which may be a secret)."""
    name, value = setting.split("=", 1)
    env = {**_env(tmp_path / "data"), name: value}
    done = subprocess.run(
        [CLOSELOOP, "export-openapi", "--output", str(tmp_path / "openapi.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert said in done.stderr
    assert "Traceback" not in done.stderr
    assert value not in done.stderr
    assert not (tmp_path / "openapi.json").exists()
