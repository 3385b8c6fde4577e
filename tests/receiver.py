"""A real HTTP receiver on 127.0.0.1 for webhook tests: it records what arrives and answers as
told, per path: `/ok`, `/fail` (500), `/gone` (410), `/redirect` (302), `/hang` (never
answers), `/reset` (drops the connection), `/slow` (answers 200 after a delay), `/busy` (429
with Retry-After), `/big` (200 with a 10 KiB body), `/raw/<name>` (the bytes RAW_ANSWERS holds
under that name, no HTTP parser's idea of an answer, then the connection closes).

A small asyncio HTTP/1.1 server, keep-alive included, so the tests depend on nothing but the
standard library, and the dispatcher talks to a real socket.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks.webhooks import Webhook

# What broken servers send back: each is written as it is, then the connection is closed.
RAW_ANSWERS = {
    "not-http": b"hello, is it me you are looking for?\r\n\r\n",
    "bad-status-line": b"HTTP/1.1 2xx OK\r\ncontent-length: 0\r\n\r\n",
    "header-without-colon": b"HTTP/1.1 200 OK\r\nno colon here\r\ncontent-length: 0\r\n\r\n",
    "bad-content-length": b"HTTP/1.1 200 OK\r\ncontent-length: lots\r\n\r\nok",
    "huge-header": (
        b"HTTP/1.1 200 OK\r\nx-padding: " + b"a" * 200_000 + b"\r\ncontent-length: 0\r\n\r\n"
    ),
    "bad-chunk": b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nok\r\n",
    "cut-short": b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this",
    "binary-retry-after": (
        b"HTTP/1.1 503 X\r\nretry-after: \xff\xfe\x80 soon\r\ncontent-length: 0\r\n\r\n"
    ),
    "nul-in-body": b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nok\x00\xff\xfe\xed!",
}


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def verify(self, secret: str) -> Any:
        """The payload, once the standardwebhooks package accepts the signature."""
        return Webhook(secret).verify(self.body, self.headers)


@dataclass
class Receiver:
    host: str = "127.0.0.1"
    port: int = 0
    slow_seconds: float = 0.2
    retry_after: str = "120"
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    server: asyncio.Server | None = None
    writers: set[asyncio.StreamWriter] = field(default_factory=set)
    # The client ports of the requests being answered (read, not yet answered).
    in_flight: set[int] = field(default_factory=set)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def wait_for(self, count: int, path: str | None = None, within: float = 15) -> None:
        """Wait (with a deadline) until `count` requests (to `path`) have arrived."""

        def enough() -> bool:
            seen = self.received if path is None else self.at(path)
            return len(seen) >= count

        async with asyncio.timeout(within), self.arrived:
            await self.arrived.wait_for(enough)

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for writer in list(self.writers):
            writer.close()
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                path, headers, body = request
                async with self.arrived:
                    self.received.append(Received(path, headers, body))
                    self.arrived.notify_all()
                port = writer.get_extra_info("peername")[1]
                self.in_flight.add(port)
                try:
                    if not await self._answer(path, writer):
                        return
                finally:
                    self.in_flight.discard(port)
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self.writers.discard(writer)
            writer.close()

    async def _answer(self, path: str, writer: asyncio.StreamWriter) -> bool:
        """Answer the request; False when the connection is to be dropped."""
        if path == "/hang":
            await asyncio.Event().wait()
        if path == "/reset":
            writer.transport.abort()
            return False
        if path.startswith("/raw/"):
            writer.write(RAW_ANSWERS[path.removeprefix("/raw/")])
            await writer.drain()
            return False
        if path == "/slow":
            await asyncio.sleep(self.slow_seconds)
        status, extra, body = {
            "/fail": (500, {}, b"it broke"),
            "/gone": (410, {}, b"gone"),
            "/redirect": (302, {"location": "http://127.0.0.1:1/elsewhere"}, b""),
            "/busy": (429, {"retry-after": self.retry_after}, b"slow down"),
            "/big": (200, {}, b"x" * 10_240),
        }.get(path, (200, {}, b"ok"))
        head = [f"HTTP/1.1 {status} X", f"content-length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in extra.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()
        return True


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, dict[str, str], bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    _, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return path, headers, body


@contextlib.asynccontextmanager
async def running_receiver(**options: Any) -> AsyncIterator[Receiver]:
    receiver = Receiver(**options)
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()
