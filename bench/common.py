"""What the benchmarks share: the embedded PostgreSQL, server processes, wrk, the machine.

Everything listens on 127.0.0.1 only. Every process a benchmark starts is stopped when it ends,
on success, on error, on Ctrl-C or on SIGTERM: servers run in their own session (a Ctrl-C in the
terminal reaches the benchmark, which then stops them in order) and, on Linux, are also told to
stop if the benchmark itself dies without a chance to clean up.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import IO, Any

import httpx

from app.core.config import Settings

LOOPBACK = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
# The benchmarks' own PostgreSQL cluster, apart from the one `closeloop serve` uses.
DATA_DIR = PROJECT_ROOT / ".closeloop-bench"

_PR_SET_PDEATHSIG = 1
# The service's default (FEEDBACK_DB_POOL_SIZE), read from its settings, not typed again; the
# reference server's pool is as large.
POOL_SIZE: int = Settings.model_fields["db_pool_size"].default
# Above this (in cores) the rest of the machine was busy enough to move the figures.
QUIET_OTHER_CORES = 0.15


class BenchError(RuntimeError):
    """The benchmark could not run: a server did not start, wrk failed, a sanity check failed."""


# -- running cleanly ----------------------------------------------------------------------------


def run_cleanly(body: Callable[[ExitStack], int]) -> int:
    """Run body, then close everything it put on the stack, whatever happened.

    SIGTERM unwinds like Ctrl-C. While the stack closes, Ctrl-C and SIGTERM are held off (each
    step there has its own time limit), so an impatient second Ctrl-C cannot leave a server or
    PostgreSQL running.
    """

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous_term = signal.signal(signal.SIGTERM, terminate)
    stack = ExitStack()
    try:
        return body(stack)
    except KeyboardInterrupt:
        print("\ninterrupted; stopping what was started", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 2
    finally:
        with signals_held():
            stack.close()
        signal.signal(signal.SIGTERM, previous_term)


@contextmanager
def signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM off while the block stops what was started."""

    def hold(signum: int, frame: FrameType | None) -> None:
        print("still cleaning up; it will not take long", file=sys.stderr)

    previous = {s: signal.signal(s, hold) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# -- server processes ---------------------------------------------------------------------------


def free_port() -> int:
    """A port nothing listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
    return port


def clean_environment(**settings: str) -> dict[str, str]:
    """This environment without any FEEDBACK_* setting the caller may have, plus settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDBACK_")}
    env.update(settings)
    return env


def stop_with_parent() -> None:
    # Runs in the child between fork and exec: if the benchmark is killed outright (kill -9),
    # the kernel sends the child SIGTERM instead of leaving it behind.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class ServerProcess:
    """A server the benchmark started, in its own process group."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: IO[bytes]

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def output_tail(self, limit: int = 4000) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-limit:].strip()

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (a graceful uvicorn shutdown), then SIGKILL if it takes too long."""
        if self.process.poll() is not None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.process.wait(timeout)

    def _signal_group(self, signum: int) -> None:
        # The group was created for this process alone (start_new_session), so its id is ours.
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)


def start_process(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    log: IO[bytes],
    port: int = 0,
    pipe_stdout: bool = False,
) -> ServerProcess:
    """Start argv in its own session, stopped by the kernel if the benchmark dies; its output
    goes to log (only stderr when pipe_stdout: stdout is then a pipe to read). The caller stops
    it (`ServerProcess.stop`)."""
    process = subprocess.Popen(
        list(argv),
        cwd=PROJECT_ROOT,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if pipe_stdout else log,
        stderr=log if pipe_stdout else subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=stop_with_parent if sys.platform == "linux" else None,
    )
    return ServerProcess(name, process, port, log)


@contextmanager
def server_process(
    name: str,
    argv: Sequence[str],
    *,
    port: int,
    env: Mapping[str, str],
    ready_path: str,
    ready_timeout: float = 60.0,
) -> Iterator[ServerProcess]:
    """Start a server, wait until GET ready_path answers 200, stop it when the block ends."""
    with tempfile.TemporaryFile() as log:
        server = start_process(name, argv, env=env, log=log, port=port)
        try:
            wait_until_ready(server, ready_path, timeout=ready_timeout)
            yield server
        finally:
            with signals_held():
                server.stop()


def wait_until_ready(server: ServerProcess, path: str, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            code = server.process.poll()
            if code is not None:
                raise BenchError(
                    f"{server.name} exited with status {code} before it was ready:\n"
                    f"{server.output_tail()}"
                )
            try:
                answer = client.get(server.base_url + path)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}"
            else:
                if answer.status_code == 200:
                    return
                last = f"{answer.status_code} {answer.text[:500]}"
            time.sleep(0.1)
    raise BenchError(
        f"{server.name} was not ready after {timeout:.0f} s (last: {last}):\n{server.output_tail()}"
    )


def closeloop_command() -> list[str]:
    """How to run the `closeloop` command of this virtualenv."""
    script = Path(sys.executable).parent / "closeloop"
    return [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]


def create_api_key(env: Mapping[str, str], scopes: Sequence[str], *, name: str = "bench") -> str:
    """A new API key with these scopes, made by `closeloop create-api-key` in env's database."""
    argv = [*closeloop_command(), "create-api-key", "--name", name]
    for scope in scopes:
        argv += ["--scope", scope]
    finished = subprocess.run(
        argv,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    lines = finished.stdout.strip().splitlines()
    if finished.returncode != 0 or not lines:
        raise BenchError(
            f"closeloop create-api-key failed ({finished.returncode}):\n"
            f"{finished.stderr.strip()[-4000:]}"
        )
    return lines[-1].strip()


@contextmanager
def closeloop_server(env: Mapping[str, str]) -> Iterator[ServerProcess]:
    """`closeloop serve` (one process) on a free loopback port, ready, stopped after the block."""
    port = free_port()
    argv = [*closeloop_command(), "serve", "--host", LOOPBACK, "--port", str(port)]
    with server_process("service", argv, port=port, env=env, ready_path="/readyz") as server:
        yield server


@contextmanager
def closeloop_workers(env: Mapping[str, str], count: int) -> Iterator[list[ServerProcess]]:
    """`count` `closeloop worker` processes (SLA monitor, webhook dispatcher), started but not
    waited for (they answer no HTTP); stopped when the block ends."""
    with ExitStack() as stack:
        yield [stack.enter_context(_closeloop_worker(f"worker {n + 1}", env)) for n in range(count)]


@contextmanager
def _closeloop_worker(name: str, env: Mapping[str, str]) -> Iterator[ServerProcess]:
    with tempfile.TemporaryFile() as log:
        worker = start_process(name, [*closeloop_command(), "worker"], env=env, log=log)
        try:
            yield worker
        finally:
            with signals_held():
                worker.stop()


def service_environment(database_url: str) -> dict[str, str]:
    """The service's settings for a benchmark: its database, quiet logs, limits never reached."""
    return clean_environment(
        FEEDBACK_DATABASE_URL=database_url,
        FEEDBACK_ACCESS_LOG="false",
        # On, so the limiters' counting is measured, and too high ever to refuse.
        FEEDBACK_INGEST_RATE_LIMIT_PER_MINUTE="1000000000",
        FEEDBACK_RATE_LIMIT_PER_MINUTE="1000000000",
        # Both pools together: the raw one, which ingest uses, as large as the reference's.
        FEEDBACK_DB_POOL_SIZE=str(2 * POOL_SIZE),
        FEEDBACK_LOG_LEVEL="warning",
    )


# -- wrk ----------------------------------------------------------------------------------------
def wrk_binary() -> str:
    found = shutil.which("wrk") or ("/usr/bin/wrk" if Path("/usr/bin/wrk").exists() else None)
    if found is None:
        raise BenchError("wrk is not installed (Debian/Ubuntu: apt-get install wrk)")
    return found


def wrk_version() -> str:
    try:
        finished = subprocess.run(
            [wrk_binary(), "--version"], capture_output=True, text=True, check=False, timeout=10
        )
    except (BenchError, OSError, subprocess.TimeoutExpired):
        return "unknown"
    first = (finished.stdout or finished.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0] if first else "unknown"


# -- latency samples ----------------------------------------------------------------------------


def percentiles(
    samples: Sequence[float], points: Sequence[float] = (50, 90, 99)
) -> dict[str, float]:
    """Nearest-rank percentiles of samples (`p50`, `p90`, ...), plus their count and maximum."""
    if not samples:
        raise BenchError("no samples to summarise")
    ordered = sorted(samples)
    figures = {
        f"p{point:g}": ordered[max(0, min(len(ordered), math.ceil(point / 100 * len(ordered))) - 1)]
        for point in points
    }
    figures["max"] = ordered[-1]
    figures["count"] = len(ordered)
    return figures


# -- the machine and the results ----------------------------------------------------------------


def progress(message: str) -> None:
    """A line on stderr saying what the benchmark is doing now."""
    print(f"· {message}", file=sys.stderr, flush=True)


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine(packages: Sequence[str] = ()) -> dict[str, Any]:
    """What the figures were measured on: cores, Python, OS, the packages that matter."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "processor": platform.processor() or platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "wrk": wrk_version(),
        "packages": {name: _package_version(name) for name in packages},
    }


def save_result(name: str, result: Mapping[str, Any]) -> Path:
    """Write result as bench/results/<name>-<UTC time>.json; return the path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
