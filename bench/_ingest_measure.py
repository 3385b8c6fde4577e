"""bench/ingest.py's measurements: the answers checked first, one measured wrk run per server,
and a py-spy profile of the service during it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from app.core.embedded import EmbeddedPostgres
from bench._ingest_load import (
    DETRACTORS,
    PROMOTERS,
    REALISTIC_DETRACTORS,
    REALISTIC_OTHERS,
    RETURNING_CUSTOMERS,
)
from bench._measure import CpuUse, WrkResult, cpu_use, run_wrk
from bench._postgres import checkpoint
from bench.common import (
    BenchError,
    ServerProcess,
    progress,
)

PATH = "/v1/feedback"
BATCH_PATH = "/v1/feedback/batch"
# The targets (issue 11): items/s against the reference's, by stream; the service's p99 at most
# this many times the reference's; a batch's items/s at least this many times the single rate.
TARGET_RATIO = {"default": 1.0, "realistic": 0.9}
TARGET_P99_FACTOR = 2.0
TARGET_BATCH_FACTOR = 10.0
# Functions listed in a profile summary, by self time and by total time.
PROFILE_LINES = 25


@dataclass(frozen=True)
class Options:
    duration: int
    rounds: int
    connections: int
    warmup: int
    mix: str
    negative_share: float
    batch: int
    batch_connections: int
    profile: bool
    threads: int
    json: bool

    @property
    def customers(self) -> int:
        """Returning customers the items are drawn from (0: a new customer per item)."""
        return RETURNING_CUSTOMERS if self.mix == "realistic" else 0

    @property
    def target_ratio(self) -> float:
        return TARGET_RATIO[self.mix]


# -- the two servers ----------------------------------------------------------------------------


def _sample_bodies(mix: str) -> tuple[dict[str, Any], ...]:
    """One body of each kind, with a customer, as the load sends them."""
    if mix == "realistic":
        bodies = (REALISTIC_DETRACTORS[0], REALISTIC_OTHERS[0])
        return tuple(
            json.loads(json.dumps(body).replace("@CUSTOMER@", "cus_check")) for body in bodies
        )
    return (DETRACTORS[0], PROMOTERS[0])


def check_answers(server: ServerProcess, key: str, mix: str, *, batch: bool = False) -> None:
    """One body of each kind must be stored (201) before any load: a 4xx would make the run moot.
    With batch, one batch of them must have every item created or replayed."""
    headers = {"Authorization": f"Bearer {key}"}
    bodies = _sample_bodies(mix)
    with httpx.Client(timeout=10.0) as client:
        if batch:
            answer = client.post(
                server.base_url + BATCH_PATH, json={"items": list(bodies)}, headers=headers
            )
            results = answer.json().get("results", []) if answer.status_code == 200 else []
            if len(results) != len(bodies) or any(r["status"] == "error" for r in results):
                raise BenchError(
                    f"{server.name} did not store a valid batch ({answer.status_code}):\n"
                    f"{answer.text[:2000]}\n{server.output_tail()}"
                )
            return
        for body in bodies:
            answer = client.post(server.base_url + PATH, json=body, headers=headers)
            if answer.status_code not in (200, 201):
                raise BenchError(
                    f"{server.name} answered {answer.status_code} to a valid body, not 201:\n"
                    f"{answer.text[:2000]}\n{server.output_tail()}"
                )


@dataclass(frozen=True)
class Measurement:
    """wrk's figures for one run, and who used the CPU meanwhile."""

    load: WrkResult
    cpu: CpuUse
    items_per_request: int = 1

    @property
    def items(self) -> int:
        return self.load.requests * self.items_per_request

    @property
    def items_per_s(self) -> float:
        return self.load.requests_per_s * self.items_per_request

    @property
    def cpu_ms_per_item(self) -> float:
        """The server process's CPU time per item."""
        return 1000 * self.cpu.server / self.items if self.items else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.load.as_dict(),
            "items_per_request": self.items_per_request,
            "items_per_s": round(self.items_per_s, 1),
            "server_cpu_ms_per_item": round(self.cpu_ms_per_item, 4),
            "cores_busy": self.cpu.cores(),
        }


def measure(
    server: ServerProcess,
    postgres: EmbeddedPostgres,
    *,
    database_url: str,
    options: Options,
    script: Path,
    key: str,
    batch: int = 0,
    profile: Path | None = None,
) -> Measurement:
    url = server.base_url + (BATCH_PATH if batch else PATH)
    connections = options.batch_connections if batch else options.connections

    def load(seconds: float) -> WrkResult:
        return run_wrk(
            url,
            connections=connections,
            threads=min(options.threads, connections),
            duration_s=seconds,
            script=script,
            script_args=[key, repr(options.negative_share), str(options.customers), str(batch)],
            timeout_s=30.0 if batch else 10.0,
        )

    if options.warmup > 0:
        progress(f"{server.name}: warming up for {options.warmup:g} s")
        load(options.warmup)
    checkpoint(database_url)
    progress(f"{server.name}: measuring for {options.duration:g} s")
    with ExitStack() as sampling:
        if profile is not None:
            sampling.enter_context(py_spy(server.process.pid, profile, options.duration))
        with cpu_use(server, postgres) as account:
            result = load(options.duration)
    if server.process.poll() is not None:
        raise BenchError(f"{server.name} died during the run:\n{server.output_tail()}")
    return Measurement(result, account[0], batch or 1)


# -- the profile --------------------------------------------------------------------------------


@contextmanager
def py_spy(pid: int, output: Path, seconds: float) -> Iterator[None]:
    """Sample pid with py-spy (collapsed stacks in output) while the block runs."""
    binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(binary).exists():
        raise BenchError("--profile needs py-spy (pip install py-spy)")
    argv = [binary, "record", "--pid", str(pid), "--duration", str(round(seconds) + 2)]
    argv += ["--rate", "200", "--format", "raw", "--nonblocking", "--output", str(output)]
    sampler = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    try:
        yield
    finally:
        _, errors = sampler.communicate(timeout=seconds + 60)
        if sampler.returncode != 0 or not output.exists():
            raise BenchError(f"py-spy failed ({sampler.returncode}): {errors.decode()[-2000:]}")


def _frame_name(frame: str) -> str:
    """`function (path/to/module.py:line)` as `module.py:function`."""
    match = re.match(r"(.+?) \((.+?):\d+\)$", frame)
    if match is None:
        return frame
    name, path = match.groups()
    return f"{Path(path).name}:{name}"


def profile_summary(collapsed: Path, items: int, cpu_seconds: float) -> dict[str, Any]:
    """Where the service's CPU went, from py-spy's collapsed stacks: the share of samples in
    each function (self: at the top of the stack; total: anywhere on it), as CPU ms per item."""
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    samples = 0
    for line in collapsed.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for name in set(frames):
            anywhere[name] += count
    per_item = 1000 * cpu_seconds / items if items else 0.0

    def table(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {
                "function": name,
                "share": round(count / samples, 4),
                "cpu_ms_per_item": round(per_item * count / samples, 4),
            }
            for name, count in counter.most_common(PROFILE_LINES)
        ]

    return {
        "samples": samples,
        "cpu_ms_per_item": round(per_item, 4),
        "self": table(own) if samples else [],
        "total": table(anywhere) if samples else [],
        "collapsed_stacks": str(collapsed),
    }
