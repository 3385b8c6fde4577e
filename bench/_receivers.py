"""The webhook receivers seen from bench/webhooks.py: start `python -m bench.receiver`, wait for it,
stop it and read what arrived."""

from __future__ import annotations

import base64
import json
import queue
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from standardwebhooks.webhooks import Webhook

from bench.common import (
    LOOPBACK,
    BenchError,
    ServerProcess,
    clean_environment,
    percentiles,
    signals_held,
    start_process,
)

# -- the benchmark's side -----------------------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    endpoint: int
    webhook_id: str
    at_ns: int


@dataclass(frozen=True)
class Sample:
    endpoint: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Received:
    """What the receivers got: every request, and a few kept whole."""

    arrivals: list[Arrival]
    samples: list[Sample]
    healthy: int

    def figures(self, due_ns: int, expected: int) -> dict[str, Any]:
        """Rates and due → received times of the `expected` healthy messages, all due at
        due_ns (wall clock); a message received twice counts once, at its first arrival."""
        healthy = [a for a in self.arrivals if a.endpoint < self.healthy]
        first_arrival: dict[str, int] = {}
        for a in healthy:
            first_arrival.setdefault(a.webhook_id, a.at_ns)
        latencies = [(at - due_ns) / 1e6 for at in first_arrival.values()]
        first, last = min(latencies), max(latencies)
        return {
            "healthy_messages": expected,
            "healthy_received": len(first_arrival),
            "duplicates": len(healthy) - len(first_arrival),
            "dead_requests": len(self.arrivals) - len(healthy),
            "healthy_per_s": round(expected / (last / 1e3), 1),
            "steady_per_s": round((expected - 1) / ((last - first) / 1e3), 1),
            "first_received_ms": round(first, 1),
            "due_to_received_ms": {k: round(v, 1) for k, v in percentiles(latencies).items()},
        }

    def verify(self, secrets: Sequence[str]) -> int:
        """How many kept requests the standardwebhooks package accepts (secrets by endpoint);
        one it refuses stops the benchmark."""
        for sample in self.samples:
            try:
                Webhook(secrets[sample.endpoint]).verify(sample.body, sample.headers)
            except Exception as exc:
                raise BenchError(f"a signature did not verify: {exc}") from exc
        return len(self.samples)


class Receivers:
    """The receiving process, seen from the benchmark."""

    def __init__(self, process: ServerProcess, records: Path, healthy: int, dead: int) -> None:
        self.process = process
        self.records = records
        self.healthy = healthy
        self.dead = dead
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.last_progress = "nothing yet"
        self.ports: list[int] = []
        stdout = process.process.stdout
        assert stdout is not None
        threading.Thread(target=self._read, args=(stdout,), daemon=True).start()

    def _read(self, stdout: IO[bytes]) -> None:
        for line in stdout:
            self.lines.put(line.decode().strip())
        self.lines.put(None)

    def url(self, endpoint: int) -> str:
        kind = "ok" if endpoint < self.healthy else "dead"
        return f"http://{LOOPBACK}:{self.ports[endpoint]}/hooks/{kind}-{endpoint}"

    def wait_for(self, word: str, *, deadline: float) -> str:
        """The first line saying word (`ready`, `done`), waited for until deadline (monotonic)."""
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise BenchError(
                    f"the receivers did not say {word!r} in time "
                    f"(healthy, dead ids so far: {self.last_progress})"
                ) from None
            if line is None:
                raise BenchError(f"the receivers exited:\n{self.process.output_tail()}")
            if line.startswith("progress "):
                self.last_progress = line.removeprefix("progress ")
            if line.split()[0] == word:
                return line

    @property
    def pid(self) -> int:
        return self.process.process.pid

    def halt(self) -> None:
        """Stop the process (if it still runs), with what it received."""
        with signals_held():
            self.process.stop()

    def stop(self) -> Received:
        """Stop the process and answer what it received."""
        self.halt()
        try:
            document = json.loads(self.records.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BenchError(
                f"the receivers left no records ({exc}):\n{self.process.output_tail()}"
            ) from exc
        return Received(
            arrivals=[Arrival(e, i, at) for e, i, at in document["records"]],
            samples=[
                Sample(s["endpoint"], s["headers"], base64.b64decode(s["body"]))
                for s in document["samples"]
            ],
            healthy=self.healthy,
        )


@contextmanager
def receivers(*, healthy: int, dead: int, expect: int) -> Iterator[Receivers]:
    """The receiving process, listening; stopped when the block ends if not before."""
    with tempfile.TemporaryDirectory() as directory, tempfile.TemporaryFile() as log:
        records = Path(directory) / "records.json"
        argv = [sys.executable, "-m", "bench.receiver", "--healthy", str(healthy)]
        argv += ["--dead", str(dead), "--expect", str(expect), "--records", str(records)]
        process = start_process(
            "receivers", argv, env=clean_environment(), log=log, pipe_stdout=True
        )
        try:
            receiving = Receivers(process, records, healthy, dead)
            ready = receiving.wait_for("ready", deadline=time.monotonic() + 30)
            receiving.ports = [int(port) for port in ready.split()[1:]]
            yield receiving
        finally:
            with signals_held():
                process.stop()
