"""`closeloop import`: a file through the batch ingest, with an exact summary, a CSV of
failures, safe to run again and resumable after an interruption."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.connectors import imports
from app.connectors.imports import Counts, ImportRun, import_file
from app.connectors.mapping import ConnectorMapping
from app.core.config import Settings
from app.core.crypto import secret_box
from app.core.db import BoundDatabase, Database
from app.feedback.identity import IdentitySecrets

HEADER = "external_id,channel,metric,score,comment,customer.email,attributes.plan,tags\n"
ROWS = [
    "r1,email,nps,3,Late delivery,ana@example.com,pro,old;2019\n",
    "r2,web,csat,9,,,,\n",  # outside the scale
    "r3,web,nps,0,,,,\n",  # zero is a score
    "r4,web,nps,10,Great,,,\n",
    'r5,"web,nps\n',  # a cell left open: the rest of the file is one bad row
]


class Interrupted(Exception):
    pass


def identities() -> IdentitySecrets:
    return IdentitySecrets(secret_box(None))


def failures(path: Path) -> list[list[str]]:
    with imports.failures_path(path).open(newline="") as handle:
        return list(csv.reader(handle))[1:]


async def test_a_csv_imports_with_an_exact_summary_and_failures(
    tmp_path: Path, database: BoundDatabase, settings: Settings, admin: httpx.AsyncClient
) -> None:
    path = tmp_path / "export.csv"
    path.write_text(HEADER + "".join(ROWS[:4]) + "r6,web,nps,5,Not great\n")
    counts, failures_csv = await import_file(
        path, ImportRun(database, settings, "legacy"), identities()
    )
    assert counts == Counts(created=3, replayed=0, updated=0, failed=2)
    assert failures(path) == [
        ["3", "r2", "score: csat scores run from 1 to 5"],
        ["6", "", "5 cells where the header has 8"],
    ]
    assert failures_csv == imports.failures_path(path)
    items = (await admin.get("/v1/feedback", params={"source": "legacy"})).json()["items"]
    by_id = {item["external_id"]: item for item in items}
    assert by_id["r1"]["tags"] == ["old", "2019"]
    assert by_id["r1"]["attributes"] == {"plan": "pro"}
    assert by_id["r1"]["case"] is not None
    assert by_id["r3"]["score"] == 0
    # Again: nothing new; a row changed since is an update.
    path.write_text(HEADER + ROWS[0] + ROWS[2].replace(",0,", ",9,") + ROWS[3])
    again, _ = await import_file(path, ImportRun(database, settings, "legacy"), identities())
    assert again == Counts(created=0, replayed=2, updated=1, failed=0)
    assert failures(path) == []


async def test_an_imported_row_is_stored_as_the_api_stores_the_same_item(
    tmp_path: Path, database: BoundDatabase, settings: Settings, admin: httpx.AsyncClient
) -> None:
    """The import prepares rows in a thread and stores them by the batch statement: what it
    stores is what `POST /v1/feedback` stores for the same item."""
    path = tmp_path / "same.csv"
    path.write_text(HEADER + ROWS[0] + ROWS[3])
    counts, _ = await import_file(path, ImportRun(database, settings, "imported"), identities())
    assert counts == Counts(created=2)
    posted = [
        {
            "external_id": "r1",
            "channel": "email",
            "metric": "nps",
            "score": 3,
            "comment": "Late delivery",
            "customer": {"email": "ana@example.com"},
            "attributes": {"plan": "pro"},
            "tags": ["old", "2019"],
        },
        {"external_id": "r4", "channel": "web", "metric": "nps", "score": 10, "comment": "Great"},
    ]
    for body in posted:
        response = await admin.post("/v1/feedback", json={**body, "source": "posted"})
        assert response.status_code == 201, response.text

    def stored(source: str) -> Any:
        return admin.get("/v1/feedback", params={"source": source})

    def comparable(item: dict[str, Any]) -> dict[str, Any]:
        case = item["case"]
        kept = {k: v for k, v in item.items() if k not in _ITS_OWN}
        return {**kept, "case_team": None if case is None else case["team"]}

    imported = sorted((await stored("imported")).json()["items"], key=lambda i: i["external_id"])
    by_api = sorted((await stored("posted")).json()["items"], key=lambda i: i["external_id"])
    assert [comparable(i) for i in imported] == [comparable(i) for i in by_api]
    assert imported[0]["case"] is not None


async def test_history_is_stored_and_routed_but_opens_no_case(
    tmp_path: Path, database: BoundDatabase, settings: Settings, admin: httpx.AsyncClient
) -> None:
    """Years-old complaints are figures, not work: with `cases_since` only the recent ones open
    cases (an agent could act on them); the old ones keep their team for the reports."""
    now = datetime.now(UTC)
    recent = (now - timedelta(days=2)).isoformat()
    path = tmp_path / "history.csv"
    header = "external_id,channel,metric,score,comment,customer.email,submitted_at\n"
    path.write_text(
        header
        + "h1,email,nps,2,Never arrived,old@example.com,2019-03-01T10:00:00Z\n"
        + f"h2,email,nps,1,Still broken,new@example.com,{recent}\n"
        + "h3,web,nps,10,Lovely,,2019-03-02T10:00:00Z\n"
        + "h4,web,nps,3,No time of its own,,\n"
    )
    run = ImportRun(database, settings, "history", cases_since=now - timedelta(days=30))
    counts, _ = await import_file(path, run, identities())
    assert counts == Counts(created=4, without_case=1)
    items = (await admin.get("/v1/feedback", params={"source": "history"})).json()["items"]
    by_id = {item["external_id"]: item for item in items}
    assert by_id["h1"]["case"] is None
    assert by_id["h1"]["routing"]["team"] == by_id["h2"]["case"]["team"]
    assert by_id["h2"]["case"] is not None
    assert by_id["h4"]["case"] is not None  # no time: submitted now
    cases = (await admin.get("/v1/cases")).json()["items"]
    assert len(cases) == 2
    # Changed since (the update path): still history, still on no case.
    path.write_text(header + "h1,email,nps,1,Never arrived at all,old@example.com,2019-03-01\n")
    again, _ = await import_file(path, run, identities())
    assert again == Counts(updated=1, without_case=1)
    assert len((await admin.get("/v1/cases")).json()["items"]) == 2
    # Without a cut-off (the API's own rule), the same old complaint opens its case.
    path.write_text(header + "h5,email,nps,2,Lost parcel,old@example.com,2019-03-05T10:00:00Z\n")
    live, _ = await import_file(path, ImportRun(database, settings, "history"), identities())
    assert live == Counts(created=1)
    assert len((await admin.get("/v1/cases")).json()["items"]) == 3


# What differs between two stores of the same item: its id, source, times and case.
_ITS_OWN = frozenset({"id", "source", "received_at", "submitted_at", "case"})


async def test_a_mapping_reads_a_tools_export(
    tmp_path: Path, database: BoundDatabase, settings: Settings, admin: httpx.AsyncClient
) -> None:
    path = tmp_path / "typeform.csv"
    path.write_text(
        "Token,How likely?,Why?,Email,Submitted At\n"
        "tok-1,2,Slow app,dee@example.com,2024-03-01 10:00:00\n"
        "tok-2,x,,,2024-03-01 11:00:00\n"
    )
    mapping = ConnectorMapping.model_validate(
        {
            "metric": "nps",
            "field": "How likely?",
            "comment": "Why?",
            "email": "Email",
            "submitted_at": "Submitted At",
            "response_id": "Token",
        }
    )
    run = ImportRun(database, settings, "typeform-archive", mapping)
    counts, _ = await import_file(path, run, identities())
    assert counts == Counts(created=1, failed=1)
    assert failures(path)[0][:1] == ["3"]
    assert "How likely?" in failures(path)[0][2]
    [item] = (await admin.get("/v1/feedback", params={"source": "typeform-archive"})).json()[
        "items"
    ]
    assert (item["external_id"], item["score"]) == ("tok-1", 2)
    assert item["submitted_at"] == "2024-03-01T10:00:00Z"
    assert item["attributes"] == {"time_zone_assumed": "UTC"}


async def test_jsonl_rows_without_ids_are_stable_across_runs(
    tmp_path: Path, database: BoundDatabase, settings: Settings
) -> None:
    path = tmp_path / "old.jsonl"
    lines = [
        json.dumps({"channel": "app", "metric": "star", "score": 5}),
        json.dumps({"channel": "app", "comment": "Muy lento"}),
        "not json",
    ]
    path.write_text("\n".join(lines) + "\n")
    first, _ = await import_file(path, ImportRun(database, settings, "app-old"), identities())
    assert first == Counts(created=2, failed=1)
    assert failures(path) == [
        ["3", "", "not valid JSON: invalid literal, expected 'null' (column 1)"]
    ]
    second, _ = await import_file(path, ImportRun(database, settings, "app-old"), identities())
    assert second == Counts(replayed=2, failed=1)


@pytest.fixture
def two_row_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of two rows, so that a few lines make several chunks."""
    monkeypatch.setattr(imports, "CHUNK_ROWS", 2)


@pytest.mark.usefixtures("two_row_chunks")
async def test_an_interrupted_import_resumes_where_it_stopped(
    tmp_path: Path, database: BoundDatabase, settings: Settings
) -> None:
    path = tmp_path / "big.csv"
    path.write_text(
        "external_id,channel,metric,score\n"
        + "".join(f"row-{n},web,nps,{n % 11}\n" for n in range(9))
    )
    seen: list[int] = []

    def stop_after_first_chunk(rows: int) -> None:
        seen.append(rows)
        if sum(seen) >= 2:
            # What Ctrl-C does to the running import (its task is cancelled), without
            # interrupting the test's own event loop.
            raise Interrupted

    with pytest.raises(Interrupted):
        await import_file(
            path,
            ImportRun(database, settings, "big"),
            identities(),
            advance=stop_after_first_chunk,
        )
    assert json.loads((tmp_path / "big.csv.import-state.json").read_text())["next_line"] == 4
    resumed_from: list[int] = []
    counts, _ = await import_file(
        path, ImportRun(database, settings, "big"), identities(), advance=resumed_from.append
    )
    assert resumed_from[0] == 2  # the rows done before, counted once
    assert counts == Counts(created=9)
    assert not (tmp_path / "big.csv.import-state.json").exists()


def test_the_command_shows_progress_and_a_summary(tmp_path: Path, database_url: str) -> None:
    """The real command on the test database (promoters, and a complaint of 2019: no case is
    opened)."""
    started = datetime.now(UTC)
    path = tmp_path / "cli.csv"
    path.write_text(
        "external_id,channel,metric,score,submitted_at\n"
        + "".join(f"cli-{n},web,nps,{9 + n % 2},\n" for n in range(50))
        + "cli-old,web,nps,2,2019-03-01T10:00:00Z\n"
        + "cli-bad,web,nps,11,\n"
        + "cli-0,web,nps,10,\n"  # the same id again: this row is the item
    )
    env = {**os.environ, "FEEDBACK_DATABASE_URL": database_url, "COLUMNS": "120"}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", "import", str(path), "--source", "cli-import"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 1, done.stderr  # one row failed
        assert "53/53" in done.stderr
        assert "rows/s" in done.stderr
        assert "created 51, replayed 0, updated 0, failed 1" in done.stderr
        assert "UTC; see --cases-within): 1" in done.stderr
        assert "superseded by a later row with the same id: 1" in done.stderr
        assert failures(path) == [
            ["2", "cli-0", "superseded: line 54 has the same id and is stored instead"],
            ["53", "cli-bad", "score: nps scores run from 0 to 10"],
        ]
    finally:
        subprocess.run(
            [sys.executable, "-c", _CLEAN_UP, database_url, started.isoformat()],
            check=True,
            timeout=60,
        )


_CLEAN_UP = """
import asyncio, sys
import asyncpg
async def main(url):
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    await conn.execute("DELETE FROM feedback WHERE source = 'cli-import'")
    # The fallback team routing made for the complaint, if it did (nothing else uses it).
    await conn.execute(
        "DELETE FROM team t WHERE t.created_at >= $1::text::timestamptz "
        "AND NOT EXISTS (SELECT 1 FROM feedback_case c WHERE c.opened_for_team = t.key) "
        "AND NOT EXISTS (SELECT 1 FROM feedback f WHERE f.routing_team = t.key)",
        sys.argv[2],
    )
    await conn.close()
asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.usefixtures("two_row_chunks")
async def test_two_chunks_are_stored_at_once_and_finish_in_order(
    tmp_path: Path, committed: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "two.csv"
    lines = [f"row-{n},web,nps,{n % 11}\n" for n in range(8)]
    lines[1] = "row-1,web,nps,12\n"  # chunk 1: outside the scale
    lines[6] = "row-6,web,nps,11\n"  # chunk 4
    path.write_text("external_id,channel,metric,score\n" + "".join(lines))
    store = imports._store_chunk
    both_started = asyncio.Event()
    in_flight: list[int] = []
    most = 0

    async def held_first(*args: Any) -> tuple[Counts, list[imports.Failure]]:
        # The first chunk is stored only once the second has started beside it, and so ends
        # after it: what is counted, saved and written must still come in line order.
        nonlocal most
        chunk = args[-1]
        in_flight.append(chunk.rows[0].line)
        most = max(most, len(in_flight))
        if len(in_flight) == 2:
            both_started.set()
        if chunk.rows[0].line == 2:
            # (Bounded: stored one at a time, the second would never start.)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(both_started.wait(), 10)
        try:
            return await store(*args)
        finally:
            in_flight.remove(chunk.rows[0].line)

    monkeypatch.setattr(imports, "_store_chunk", held_first)
    states: list[int] = []

    def saved(rows: int) -> None:
        if not rows:  # where it starts from: nothing done yet
            return
        state = json.loads((tmp_path / "two.csv.import-state.json").read_text())
        states.append(state["next_line"])

    counts, _ = await import_file(
        path, ImportRun(committed, settings, "two"), identities(), advance=saved
    )
    assert most == imports.STORES_AT_ONCE == 2
    assert states == [4, 6, 8, 10]
    assert counts == Counts(created=6, failed=2)
    assert [row[0] for row in failures(path)] == ["3", "8"]
