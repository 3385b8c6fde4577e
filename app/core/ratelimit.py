"""Rate limits shared by every process, counted in PostgreSQL without a round trip per request.

Fixed one-minute windows: a row (window start, key, client address) holds how much that key sent
from that address in that minute, in an UNLOGGED table (no WAL to write; a crash of PostgreSQL
forgets the current minute's counts, which is harmless). Each process counts in memory, and a
background task adds what it let through since the last sync to the table every SYNC_SECONDS,
in one statement that also reads back the totals of every window any process changed lately.
A request is let through when the last known total, plus what this process let through since,
plus its own items, stay within the limit.

So a process never waits on the database to decide, and the limit is shared with a lag of one
sync: a process learns what the others let through at most SYNC_SECONDS (plus a statement)
late, so with N processes a window admits at most the limit plus what N processes let through in
one sync interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy import BigInteger, DateTime, Text
from sqlalchemy.orm import Mapped, mapped_column
from starlette.requests import Request

from app.core.db import Base, Database

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
SYNC_SECONDS = 0.2
# Rows another process changed are read back when changed since the last sync, less this
# margin: a change commits a little after the time it records.
_SYNC_MARGIN_SECONDS = 1.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# (key id, client address): the address is "" for keys limited per key alone.
Counter = tuple[uuid.UUID, str]


class RateLimitWindow(Base):
    __tablename__ = "rate_limit_window"
    __table_args__ = ({"prefixes": ["UNLOGGED"]},)

    # The window first: a sync reads one window, and drops the older ones, by a range of it.
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    api_key_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    client: Mapped[str] = mapped_column(Text, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


_SYNC = """
WITH delta (api_key_id, client, count) AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[])
), added AS (
    INSERT INTO rate_limit_window AS w (window_start, api_key_id, client, count, updated_at)
    SELECT $4::timestamptz, api_key_id, client, count, now() FROM delta
    ON CONFLICT (window_start, api_key_id, client)
    DO UPDATE SET count = w.count + excluded.count, updated_at = excluded.updated_at
    RETURNING api_key_id, client, count
), expired AS (
    DELETE FROM rate_limit_window WHERE window_start < $4::timestamptz
)
SELECT api_key_id, client, count FROM added
UNION ALL
SELECT w.api_key_id, w.client, w.count FROM rate_limit_window AS w
WHERE w.window_start = $4::timestamptz AND w.updated_at >= now() - make_interval(secs => $5)
  AND NOT EXISTS (SELECT 1 FROM delta d WHERE d.api_key_id = w.api_key_id AND d.client = w.client)
"""


class RateLimiter:
    """This process's view of the shared counts, and the background task that syncs it."""

    def __init__(
        self,
        *,
        ingest_per_minute: int,
        per_minute: int,
        trusted_proxies: Sequence[Network] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ingest_per_minute = ingest_per_minute
        self.per_minute = per_minute
        self.trusted_proxies = tuple(trusted_proxies)
        self.clock = clock
        self.window = self._window_of(clock())
        # Totals in the table at the last sync; let through here and not yet sent; sent and
        # not yet answered. All of the current window.
        self.known: dict[Counter, int] = {}
        self.pending: dict[Counter, int] = {}
        self.sending: dict[Counter, int] = {}
        self.last_sync: float | None = None

    @property
    def enabled(self) -> bool:
        return self.ingest_per_minute > 0 or self.per_minute > 0

    @staticmethod
    def _window_of(now: float) -> int:
        return int(now) - int(now) % WINDOW_SECONDS

    def _current_window(self) -> tuple[int, float]:
        now = self.clock()
        window = self._window_of(now)
        if window != self.window:
            self.window = window
            self.known, self.pending, self.sending = {}, {}, {}
        return window, now

    def take(self, counter: Counter, items: int, limit: int) -> float | None:
        """Count `items` against `limit` per minute: None when let through, else the seconds
        until the window ends (and nothing is counted)."""
        if limit <= 0:
            return None
        window, now = self._current_window()
        used = (
            self.known.get(counter, 0) + self.pending.get(counter, 0) + self.sending.get(counter, 0)
        )
        if used + items > limit:
            return window + WINDOW_SECONDS - now
        self.pending[counter] = self.pending.get(counter, 0) + items
        return None

    def client_address(self, request: Request) -> str:
        """The TCP peer; behind a trusted proxy, the right-most X-Forwarded-For address that is
        not itself a trusted proxy (the ones to its left are whatever the client claimed)."""
        peer = request.client.host if request.client else ""
        if not self.trusted_proxies or not self._trusted(peer):
            return peer
        hops = [
            hop.strip()
            for header in request.headers.getlist("x-forwarded-for")
            for hop in header.split(",")
        ]
        client = peer
        for hop in reversed(hops):
            try:
                address = ipaddress.ip_address(hop)
            except ValueError:
                # Not an address: whoever wrote it is no proxy of ours, so the hop that
                # passed it on is the client as far as anyone can tell.
                return client
            client = str(address)
            if not any(address in network for network in self.trusted_proxies):
                return client
        return client

    def _trusted(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.trusted_proxies)

    async def sync(self, database: Database) -> None:
        """Send what this process counted since the last sync; read back the current totals."""
        window, _ = self._current_window()
        started = time.monotonic()
        lag = (
            WINDOW_SECONDS
            if self.last_sync is None
            else started - self.last_sync + _SYNC_MARGIN_SECONDS
        )
        deltas, self.pending, self.sending = self.pending, {}, self.pending
        # One order for every process, so two upserts never wait on each other's rows in turn.
        counters = sorted(deltas)
        try:
            async with database.raw() as conn:
                rows = await conn.fetch(
                    _SYNC,
                    [key for key, _ in counters],
                    [client for _, client in counters],
                    [deltas[counter] for counter in counters],
                    datetime.fromtimestamp(window, UTC),
                    lag,
                )
        except BaseException:
            if self.window == window:  # not counted there: count it again next time
                self.sending = {}
                for counter, count in deltas.items():
                    self.pending[counter] = self.pending.get(counter, 0) + count
            raise
        if self.window != window:  # the minute ended meanwhile; these totals are of the last
            return
        self.sending = {}
        self.last_sync = started
        for row in rows:
            self.known[(row["api_key_id"], row["client"])] = row["count"]

    async def run(self, database: Database, stop: asyncio.Event) -> None:
        """Sync every SYNC_SECONDS until `stop` is set; a failure is logged once per outage."""
        failing = False
        while not stop.is_set():
            try:
                await self.sync(database)
            except Exception:
                if not failing:
                    logger.warning("rate limit sync failed; counting locally", exc_info=True)
                failing = True
            else:
                if failing:
                    logger.info("rate limit sync recovered")
                failing = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SYNC_SECONDS)
