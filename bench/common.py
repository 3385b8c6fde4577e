"""What the benchmarks share: the embedded PostgreSQL, server processes, wrk, the machine.

Everything listens on 127.0.0.1 only. Every process a benchmark starts is stopped when it ends,
on success, on error, on Ctrl-C or on SIGTERM: servers run in their own session (a Ctrl-C in the
terminal reaches the benchmark, which then stops them in order) and, on Linux, are also told to
stop if the benchmark itself dies without a chance to clean up.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import IO, Any

import asyncpg
import httpx
import psutil

from app.core.embedded import EmbeddedPostgres

LOOPBACK = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
# The benchmarks' own PostgreSQL cluster, apart from the one `closeloop serve` uses.
DATA_DIR = PROJECT_ROOT / ".closeloop-bench"

_PR_SET_PDEATHSIG = 1


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


def asyncpg_dsn(url: str) -> str:
    """A `postgresql+asyncpg://` URL as the plain DSN asyncpg takes."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


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


def _stop_with_parent() -> None:
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
        preexec_fn=_stop_with_parent if sys.platform == "linux" else None,
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


# -- who used the cores ------------------------------------------------------------------------


def _process_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _postgres_processes(server: EmbeddedPostgres) -> list[psutil.Process]:
    """The postmaster and its children (backends, writers), read from its pid file."""
    try:
        postmaster = psutil.Process(int((server.pgdata / "postmaster.pid").read_text().split()[0]))
        return [postmaster, *postmaster.children(recursive=True)]
    except (OSError, ValueError, IndexError, psutil.Error):
        return []


def postgres_cpu_seconds(server: EmbeddedPostgres) -> dict[int, float]:
    """CPU seconds (user and system) so far of each PostgreSQL process, by pid."""
    seconds = {}
    for process in _postgres_processes(server):
        with suppress(psutil.Error):
            seconds[process.pid] = _process_seconds(process)
    return seconds


@dataclass(frozen=True)
class _CpuSnapshot:
    at: float
    machine_busy: float
    server: float
    postgres: dict[int, float]
    load_generator: float

    @classmethod
    def take(cls, server: ServerProcess, postgres: EmbeddedPostgres) -> _CpuSnapshot:
        machine = psutil.cpu_times()
        # Steal is time the hypervisor gave to someone else: not ours, not busy here.
        busy = machine.user + machine.nice + machine.system
        busy += getattr(machine, "irq", 0.0) + getattr(machine, "softirq", 0.0)
        postgres_seconds = postgres_cpu_seconds(postgres)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        itself = resource.getrusage(resource.RUSAGE_SELF)
        return cls(
            at=time.monotonic(),
            machine_busy=busy,
            server=_process_seconds(psutil.Process(server.process.pid)),
            postgres=postgres_seconds,
            # wrk (a child, reaped when it ends) and this process, which mostly waits on it.
            load_generator=children.ru_utime
            + children.ru_stime
            + itself.ru_utime
            + itself.ru_stime,
        )


def _machine_busy_seconds() -> float:
    machine = psutil.cpu_times()
    # Steal is time the hypervisor gave to someone else: not ours, not busy here.
    busy = machine.user + machine.nice + machine.system
    return busy + getattr(machine, "irq", 0.0) + getattr(machine, "softirq", 0.0)


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds so far: the machine's, named groups of processes', PostgreSQL's."""

    at: float
    busy: float
    groups: dict[str, float]
    postgres: dict[int, float]

    @classmethod
    def take(cls, groups: Mapping[str, Sequence[int]], postgres: EmbeddedPostgres) -> CpuSnapshot:
        def seconds(pid: int) -> float:
            try:
                return _process_seconds(psutil.Process(pid))
            except psutil.Error:
                return 0.0

        return cls(
            at=time.monotonic(),
            busy=_machine_busy_seconds(),
            groups={name: sum(map(seconds, pids)) for name, pids in groups.items()},
            postgres=postgres_cpu_seconds(postgres),
        )

    def cores_since(self, before: CpuSnapshot) -> dict[str, float]:
        """Cores each group, PostgreSQL and the rest of the machine kept busy since before."""
        elapsed = self.at - before.at
        shares = {name: value - before.groups[name] for name, value in self.groups.items()}
        shares["postgres"] = sum(
            seconds - before.postgres.get(pid, 0.0) for pid, seconds in self.postgres.items()
        )
        shares["other"] = max(0.0, self.busy - before.busy - sum(shares.values()))
        return {name: round(value / elapsed, 3) for name, value in shares.items()}


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds spent during a run, by whom; `cores` gives them per second of the run."""

    seconds: float
    server: float
    postgres: float
    load_generator: float
    other: float

    def cores(self) -> dict[str, float]:
        return {
            name: round(value / self.seconds, 3) if self.seconds else 0.0
            for name, value in (
                ("server", self.server),
                ("postgres", self.postgres),
                ("load_generator", self.load_generator),
                ("other", self.other),
            )
        }


@contextmanager
def cpu_use(server: ServerProcess, postgres: EmbeddedPostgres) -> Iterator[list[CpuUse]]:
    """Account for the machine's CPU time over the block: the server, PostgreSQL, wrk, the rest.

    The rest is every other process on the machine. When it is not near 0 the machine was not
    quiet, and the figures measured meanwhile are low by an unknown amount. Yields a list that
    holds the account once the block has ended.
    """
    account: list[CpuUse] = []
    before = _CpuSnapshot.take(server, postgres)
    yield account
    after = _CpuSnapshot.take(server, postgres)
    # A PostgreSQL process that started during the run counts from 0; one that ended is lost.
    postgres_seconds = sum(
        seconds - before.postgres.get(pid, 0.0) for pid, seconds in after.postgres.items()
    )
    server_seconds = after.server - before.server
    load_seconds = after.load_generator - before.load_generator
    busy = after.machine_busy - before.machine_busy
    account.append(
        CpuUse(
            seconds=after.at - before.at,
            server=server_seconds,
            postgres=postgres_seconds,
            load_generator=load_seconds,
            other=max(0.0, busy - server_seconds - postgres_seconds - load_seconds),
        )
    )


# -- wrk ----------------------------------------------------------------------------------------

_TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_TIME = r"([0-9.]+)(us|ms|s|m|h)"


@dataclass(frozen=True)
class WrkResult:
    """One wrk run, as wrk reported it; latencies in milliseconds."""

    requests: int
    duration_s: float
    requests_per_s: float
    latency_ms: dict[str, float]
    non_2xx: int
    socket_errors: dict[str, int] = field(default_factory=dict)
    output: str = ""

    @property
    def p50_ms(self) -> float:
        return self.latency_ms["p50"]

    @property
    def p99_ms(self) -> float:
        return self.latency_ms["p99"]

    @property
    def failed(self) -> int:
        """Answers that were not 2xx/3xx plus connections that broke or timed out."""
        return self.non_2xx + sum(self.socket_errors.values())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _milliseconds(value: str, unit: str) -> float:
    return float(value) * _TIME_UNITS[unit]


def parse_wrk(output: str) -> WrkResult:
    """Read the figures from wrk's text report (run with --latency)."""
    summary = re.search(rf"(\d+) requests in {_TIME}", output)
    rate = re.search(r"Requests/sec:\s+([0-9.]+)", output)
    if summary is None or rate is None:
        raise BenchError(f"wrk's report could not be read:\n{output}")
    latency = {
        f"p{percent}": _milliseconds(value, unit)
        for percent, value, unit in re.findall(rf"^\s+(\d+)%\s+{_TIME}\s*$", output, re.MULTILINE)
    }
    if "p50" not in latency or "p99" not in latency:
        raise BenchError(f"wrk's report has no latency distribution (use --latency):\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    socket_errors = dict.fromkeys(("connect", "read", "write", "timeout"), 0)
    if errors is not None:
        socket_errors = dict(zip(socket_errors, map(int, errors.groups()), strict=True))
    return WrkResult(
        requests=int(summary.group(1)),
        duration_s=_milliseconds(summary.group(2), summary.group(3)) / 1e3,
        requests_per_s=float(rate.group(1)),
        latency_ms=latency,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=socket_errors,
        output=output,
    )


def wrk_binary() -> str:
    found = shutil.which("wrk") or ("/usr/bin/wrk" if Path("/usr/bin/wrk").exists() else None)
    if found is None:
        raise BenchError("wrk is not installed (Debian/Ubuntu: apt-get install wrk)")
    return found


def run_wrk(
    url: str,
    *,
    connections: int,
    threads: int,
    duration_s: float,
    script: Path | None = None,
    script_args: Sequence[str] = (),
    timeout_s: float = 10.0,
) -> WrkResult:
    """Load url for duration_s with wrk; its timeout is long so slow answers count as latency."""
    if not url.startswith(f"http://{LOOPBACK}:"):
        raise BenchError(f"benchmarks load the loopback only, not {url}")
    argv = [
        wrk_binary(),
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={max(1, round(duration_s))}s",
        f"--timeout={max(1, round(timeout_s))}s",
        "--latency",
    ]
    if script is not None:
        argv.append(f"--script={script}")
    argv.append(url)
    if script_args:
        argv += ["--", *script_args]
    try:
        finished = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=duration_s + timeout_s + 30,
            check=False,
            stdin=subprocess.DEVNULL,
            preexec_fn=_stop_with_parent if sys.platform == "linux" else None,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish in time against {url}") from exc
    if finished.returncode != 0:
        raise BenchError(
            f"wrk failed ({finished.returncode}):\n{finished.stderr.strip()}\n{finished.stdout}"
        )
    return parse_wrk(finished.stdout)


@dataclass(frozen=True)
class LoadRun:
    """One measured wrk run against a server, and who used the CPU meanwhile."""

    label: str
    load: WrkResult
    cpu: CpuUse

    @property
    def server_cpu_ms_per_request(self) -> float:
        return 1000 * self.cpu.server / self.load.requests if self.load.requests else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            **self.load.as_dict(),
            "server_cpu_ms_per_request": round(self.server_cpu_ms_per_request, 4),
            "cores_busy": self.cpu.cores(),
        }


def measure_load(
    label: str,
    server: ServerProcess,
    postgres: EmbeddedPostgres,
    *,
    database_url: str,
    load: Callable[[float], WrkResult],
    duration_s: float,
    warmup_s: float,
) -> LoadRun:
    """Warm up with load, checkpoint, then measure one run of load; a dead server or a failed
    request (non-2xx, socket error) stops the benchmark."""
    if warmup_s > 0:
        progress(f"{label}: warming up for {warmup_s:g} s")
        load(warmup_s)
    checkpoint(database_url)
    progress(f"{label}: measuring for {duration_s:g} s")
    with cpu_use(server, postgres) as account:
        result = load(duration_s)
    if server.process.poll() is not None:
        raise BenchError(f"{server.name} died during the run:\n{server.output_tail()}")
    if result.failed:
        raise BenchError(f"{label}: {result.failed} requests failed:\n{result.output}")
    return LoadRun(label, result, account[0])


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
