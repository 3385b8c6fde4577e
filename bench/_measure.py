"""Measuring a load: who used the cores during a run, and wrk's runs and their report."""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from app.core.embedded import EmbeddedPostgres
from bench._postgres import checkpoint
from bench.common import LOOPBACK, BenchError, ServerProcess, progress, stop_with_parent, wrk_binary

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
            preexec_fn=stop_with_parent if sys.platform == "linux" else None,
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
