"""Webhook receivers for bench/webhooks.py: one small process, one port per endpoint.

    python -m bench.receiver --healthy 3 --dead 1 --expect 7500 --records FILE

Healthy endpoints answer every request `200` with an empty body at once; dead ones accept the
connection, read what is sent and never answer. Both note each request's `webhook-id` and the
wall-clock time (`time.time_ns()`, the clock PostgreSQL's `now()` reads) at which it had fully
arrived, and keep the first few requests of each endpoint whole, so the benchmark can check their
signatures afterwards: nothing is verified while messages arrive, so the receivers cost the
dispatchers as little CPU as they can. A bare asyncio protocol (uvloop when installed) speaking
just enough HTTP/1.1 for keep-alive POSTs with a Content-Length.

On stdout, one line each: `ready PORT...` once listening, `progress HEALTHY DEAD` (distinct
webhook ids so far) every second while it changes, `done` once the healthy endpoints have
received `--expect` distinct ids. On SIGTERM it writes everything to `--records` (JSON) and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import json
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from bench.common import (
    LOOPBACK,
)

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
SAMPLES_PER_ENDPOINT = 3
PROGRESS_EVERY = 1.0


# -- the receiving process ----------------------------------------------------------------------


class _Log:
    """Everything that arrived, in arrival order."""

    def __init__(self, healthy: int, expect: int) -> None:
        self.healthy = healthy
        self.expect = expect
        self.records: list[tuple[int, str, int]] = []
        self.samples: list[dict[str, Any]] = []
        self.kept: dict[int, int] = {}
        self.healthy_ids: set[str] = set()
        self.dead_ids: set[str] = set()
        self.announced = False

    def arrived(self, endpoint: int, head: bytes, body: bytes, webhook_id: str, at: int) -> None:
        self.records.append((endpoint, webhook_id, at))
        if endpoint < self.healthy:
            self.healthy_ids.add(webhook_id)
            if not self.announced and len(self.healthy_ids) >= self.expect:
                self.announced = True
                _say("done")
        else:
            self.dead_ids.add(webhook_id)
        if self.kept.get(endpoint, 0) < SAMPLES_PER_ENDPOINT:
            self.kept[endpoint] = self.kept.get(endpoint, 0) + 1
            lines = head.decode("latin-1").split("\r\n")[1:]
            headers = dict(line.split(":", 1) for line in lines if ":" in line)
            self.samples.append(
                {
                    "endpoint": endpoint,
                    "headers": {k.strip().lower(): v.strip() for k, v in headers.items()},
                    "body": base64.b64encode(body).decode(),
                }
            )


def _header(head: bytes, lowered: bytes, name: bytes) -> bytes | None:
    start = lowered.find(b"\r\n" + name + b":")
    if start < 0:
        return None
    start += len(name) + 3
    end = lowered.find(b"\r\n", start)
    return head[start : end if end >= 0 else len(head)].strip()


class _Exchange(asyncio.Protocol):
    """One keep-alive connection to one endpoint."""

    def __init__(self, endpoint: int, answers: bool, log: _Log) -> None:
        self.endpoint = endpoint
        self.answers = answers
        self.log = log
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        at = time.time_ns()
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end])
            lowered = head.lower()
            length = int(_header(head, lowered, b"content-length") or 0)
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            webhook_id = (_header(head, lowered, b"webhook-id") or b"").decode("latin-1")
            self.log.arrived(self.endpoint, head, body, webhook_id, at)
            if self.answers and self.transport is not None:
                self.transport.write(OK)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _serve(args: argparse.Namespace) -> dict[str, Any]:
    log = _Log(args.healthy, args.expect)
    loop = asyncio.get_running_loop()
    servers = []
    for endpoint in range(args.healthy + args.dead):
        answers = endpoint < args.healthy
        exchange = functools.partial(_Exchange, endpoint, answers, log)
        servers.append(await loop.create_server(exchange, LOOPBACK, 0, backlog=1024))
    ports = [server.sockets[0].getsockname()[1] for server in servers]
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    _say("ready " + " ".join(map(str, ports)))
    last = (-1, -1)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PROGRESS_EVERY)
        now = (len(log.healthy_ids), len(log.dead_ids))
        if now != last:
            _say(f"progress {now[0]} {now[1]}")
            last = now
    for server in servers:
        server.close()
    return {"ports": ports, "records": log.records, "samples": log.samples}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.receiver", description=__doc__)
    parser.add_argument("--healthy", type=int, required=True)
    parser.add_argument("--dead", type=int, default=0)
    parser.add_argument("--expect", type=int, required=True, help="healthy ids to say done at")
    parser.add_argument("--records", required=True, help="where to write what arrived (JSON)")
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        received = asyncio.run(_serve(args))
    else:
        received = uvloop.run(_serve(args))
    Path(args.records).write_text(json.dumps(received), encoding="utf-8")


if __name__ == "__main__":
    main()
