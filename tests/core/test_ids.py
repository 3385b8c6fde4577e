"""Ids: Python's uuid7() and its SQL twin closeloop_uuid7() both make version-7 UUIDs whose
first 48 bits are the millisecond clock, so rows made either way sort by creation time."""

from __future__ import annotations

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
