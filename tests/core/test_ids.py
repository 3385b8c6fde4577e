"""Ids: Python's uuid7() and its SQL twin closeloop_uuid7() both make version-7 UUIDs whose
first 48 bits are the millisecond clock, so rows made either way sort by creation time."""

from __future__ import annotations

import threading
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.db import uuid7


def _millis(value: uuid.UUID) -> int:
    return value.int >> 80


async def test_python_and_sql_ids_are_version_7_and_time_ordered(
    connection: AsyncConnection,
) -> None:
    before = uuid7()
    made = await connection.execute(text("SELECT closeloop_uuid7() FROM generate_series(1, 50)"))
    sql_ids = [row[0] for row in made]
    after = uuid7()

    for value in [before, *sql_ids, after]:
        assert value.version == 7
        assert value.variant == uuid.RFC_4122
    stamps = [_millis(before), *map(_millis, sql_ids), _millis(after)]
    assert stamps == sorted(stamps)
    assert len(set(sql_ids)) == len(sql_ids)


def test_ids_made_in_two_threads_at_once_are_unique_and_each_threads_in_order() -> None:
    """`closeloop import` makes ids in a thread that prepares rows while the event loop's
    thread makes case ids."""
    made: list[list[uuid.UUID]] = [[], []]

    def make(into: list[uuid.UUID]) -> None:
        for _ in range(20_000):
            into.append(uuid7())

    threads = [threading.Thread(target=make, args=(ids,)) for ids in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(made[0]) | set(made[1])) == 40_000
    for ids in made:
        assert ids == sorted(ids)
