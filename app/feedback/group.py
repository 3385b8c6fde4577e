"""Group commit: concurrent requests of one process written together, in one transaction.

Each request does its own work (validate, derive) and then hands its item to the process's
`GroupCommit`, which sends what has gathered, up to `max_items`, once the oldest item has waited
`wait_s` (or at once when the group is full), through one `write` call, and answers each request
with its own item's outcome once that call has returned (committed). Up to `writers` groups are
written at once, each in its own transaction: while they are, the next one gathers, so the
busier the process the larger the groups, and an idle one adds at most `wait_s` to a request.
One writer spends most of a group's time waiting on PostgreSQL's round trips and commit, while
the process and the database both idle; a second one fills those waits (measured here: about
1.4 times the items/s of one on the realistic stream; more than two gained nothing).

A group whose write raises is written again one item at a time, so a bad item (or a deadlock, a
dropped connection) answers its own request with its error and not its neighbours. A crash loses
only requests not yet answered. This module knows nothing of SQL: `write` does the writing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# What `write` answers for each item, in order: its result, or the error to raise to its request.
Write = Callable[[list[Item]], Awaitable[Sequence[Result | Exception]]]


class GroupCommit(Generic[Item, Result]):
    def __init__(
        self, write: Write[Item, Result], *, max_items: int, wait_s: float, writers: int = 1
    ) -> None:
        assert max_items >= 1
        assert writers >= 1
        self.write = write
        self.max_items = max_items
        self.wait_s = wait_s
        self.writers = writers
        # Each item with its request's future and the time it arrived.
        self._pending: list[tuple[Item, asyncio.Future[Result], float]] = []
        self._full = asyncio.Event()
        self._arrived = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        """Write item with whatever else is waiting; answer its result once it is committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.append((item, future, loop.time()))
        self._arrived.set()
        if len(self._pending) >= self.max_items:
            self._full.set()
        if self._writer is None:
            # Started on demand and ended when nothing waits, so no task outlives the work (a
            # test's app, a process shutting down).
            self._writer = asyncio.create_task(self._run())
        # A request that is cancelled (its client left) leaves its item in the group: it is
        # written all the same, like a request whose answer was lost.
        return await future

    async def wait_idle(self) -> None:
        """Return once every item submitted so far has been written (or failed)."""
        while self._writer is not None:
            await asyncio.shield(self._writer)

    async def cancel(self) -> None:
        """Stop writing: the groups in flight roll back and the items waiting are dropped. For
        a server shutting down once its requests are done: an item still here is a request the
        server gave up on (answered 500, or its client left), which must not be stored behind
        that answer. Every item whose request was answered stored is committed already."""
        writer, self._writer = self._writer, None
        for _, future, _ in self._pending:
            future.cancel()
        self._pending.clear()
        if writer is not None:
            writer.cancel()
            with suppress(asyncio.CancelledError):
                await writer

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        writing: set[asyncio.Task[None]] = set()
        try:
            while True:
                writing = {task for task in writing if not task.done()}
                if not self._pending and not writing:
                    break
                if self._pending and len(writing) < self.writers:
                    wait = self._pending[0][2] + self.wait_s - loop.time()
                    if len(self._pending) < self.max_items and wait > 0:
                        self._full.clear()
                        with suppress(TimeoutError):
                            await asyncio.wait_for(self._full.wait(), wait)
                    group = [(item, f) for item, f, _ in self._pending[: self.max_items]]
                    del self._pending[: self.max_items]
                    writing.add(asyncio.create_task(self._write(group)))
                    continue
                # Every writer busy: until one is done. Or nothing waiting: until an item comes.
                waiters: set[asyncio.Future[Any]] = set(writing)
                arrived = None
                if len(writing) < self.writers:
                    self._arrived.clear()
                    arrived = asyncio.ensure_future(self._arrived.wait())
                    waiters.add(arrived)
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                if arrived is not None:
                    arrived.cancel()
        finally:
            for task in writing:
                task.cancel()
            # Their transactions roll back before this ends (and before the pools close).
            await asyncio.gather(*writing, return_exceptions=True)
            self._writer = None

    async def _write(self, group: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            outcomes = await self.write([item for item, _ in group])
        except Exception as exc:
            if len(group) == 1:
                _answer(group[0][1], exc)
                return
            # One at a time: the item that failed the group fails alone.
            for one in group:
                await self._write([one])
            return
        except BaseException as exc:  # cancelled (shutdown): nothing was committed
            for _, future in group:
                _answer(future, exc)
            raise
        for (_, future), outcome in zip(group, outcomes, strict=True):
            _answer(future, outcome)


def _answer(future: asyncio.Future[Result], outcome: Result | BaseException) -> None:
    if future.done():  # its request was cancelled
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
