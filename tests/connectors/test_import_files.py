"""`closeloop import` on files as they come: broken quotes, bytes that are not UTF-8, an id
twice, blank lines, odd scores and times. A bad row fails alone, with its line and reason; a
problem of the whole file is said once, before anything is stored."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from app.cli import build_parser
from app.connectors import imports
from app.connectors.import_cli import run_import
from app.connectors.imports import Counts, ImportRun, import_file
from app.connectors.mapping import ConnectorMapping, read_time
from app.connectors.rows import ImportFileError
from app.core.config import Settings
from app.core.crypto import secret_box
from app.core.db import BoundDatabase
from app.core.errors import ValidationFailed
from app.feedback.identity import IdentitySecrets

HEADER = "external_id,channel,metric,score,comment\n"
OPEN_QUOTE = (
    'not CSV: a quoted cell starts on this line and is not closed (a missing `"`?); '
    "the lines after it are read as rows of their own"
)


class Interrupted(Exception):
    pass


def identities() -> IdentitySecrets:
    return IdentitySecrets(secret_box(None))


def failures(path: Path) -> list[list[str]]:
    with imports.failures_path(path).open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))[1:]


async def stored(admin: httpx.AsyncClient, source: str) -> dict[str, dict[str, object]]:
    items = (await admin.get("/v1/feedback", params={"source": source, "limit": 200})).json()
    return {item["external_id"]: item for item in items["items"]}


def rows(count: int, start: int = 0) -> str:
    return "".join(f"q{n},web,nps,{n % 11},fine\n" for n in range(start, start + count))


async def test_an_unclosed_quote_fails_its_line_and_every_other_row_imports(
    tmp_path: Path, database: BoundDatabase, settings: Settings
) -> None:
    """Left open, the quote would take the rest of the file into one cell; the line is a
    failure of its own and the lines after it are rows again."""
    path = tmp_path / "quote.csv"
    bad = 'bad,web,nps,4,"oops forgot to close\n'
    path.write_text(HEADER + rows(2) + bad + rows(300, start=2))
    counts, _ = await import_file(path, ImportRun(database, settings, "quote"), identities())
    assert counts == Counts(created=302, failed=1)
    assert failures(path) == [["4", "", OPEN_QUOTE]]


async def test_an_unclosed_quote_near_the_end_takes_no_row_into_its_comment(
    tmp_path: Path, database: BoundDatabase, settings: Settings, admin: httpx.AsyncClient
) -> None:
    path = tmp_path / "end.csv"
    path.write_text(HEADER + rows(3) + 'bad,web,nps,4,"oops\n' + "last,web,nps,9,ok")
    counts, _ = await import_file(path, ImportRun(database, settings, "end"), identities())
    assert counts == Counts(created=4, failed=1)
    assert failures(path) == [["5", "", OPEN_QUOTE]]
    assert (await stored(admin, "end"))["last"]["comment"] == "ok"


async def test_a_quote_closed_by_a_later_rows_quote_fails_only_its_line(
    tmp_path: Path, database: BoundDatabase, settings: Settings, admin: httpx.AsyncClient
) -> None:
    """Later rows hold quoted cells: the open quote would close on one of them, where no cell
    can end, and the lines between would be one cell."""
    path = tmp_path / "later.csv"
    path.write_text(
        HEADER
        + 'a,web,nps,4,"left open\n'
        + 'b,web,nps,5,"Slow, really"\n'
        + 'c,web,nps,6,"Two lines,\nwith a comma"\n'
        + "d,web,nps,7,\n"
    )
    counts, _ = await import_file(path, ImportRun(database, settings, "later"), identities())
    assert counts == Counts(created=3, failed=1)
    assert failures(path) == [["2", "", OPEN_QUOTE]]
    items = await stored(admin, "later")
    assert items["b"]["comment"] == "Slow, really"
    assert items["c"]["comment"] == "Two lines,\nwith a comma"


async def test_cells_with_commas_and_line_breaks_keep_their_rows_and_line_numbers(
    tmp_path: Path, database: BoundDatabase, settings: Settings, admin: httpx.AsyncClient
) -> None:
    path = tmp_path / "multi.csv"
    path.write_text(
        HEADER
        + 'm1,web,nps,3,"First, a comma\nthen a line\n\nand a blank one"\n'
        + "m2,web,nps,12,out of scale\n"
        + 'm3,web,nps,4,"""Quoted"" words,\nover two lines"\n'
        + "m4,web,csat,9,\n"
    )
    counts, _ = await import_file(path, ImportRun(database, settings, "multi"), identities())
    assert counts == Counts(created=2, failed=2)
    assert [row[:2] for row in failures(path)] == [["6", "m2"], ["9", "m4"]]
    items = await stored(admin, "multi")
    assert items["m1"]["comment"] == "First, a comma\nthen a line\n\nand a blank one"
    assert items["m3"]["comment"] == '"Quoted" words,\nover two lines'


async def test_a_byte_that_is_not_utf8_fails_its_row_and_a_rerun_goes_through(
    tmp_path: Path, database: BoundDatabase, settings: Settings
) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        (HEADER + rows(2)).encode()
        + b"cafe,web,nps,9,caf\xe9\n"
        + b'long,web,nps,8,"caf\xc3\xa9 ok,\nthen caf\xe9"\n'
        + rows(2, start=2).encode()
    )
    run = ImportRun(database, settings, "latin")
    counts, _ = await import_file(path, run, identities())
    assert counts == Counts(created=4, failed=2)
    assert failures(path) == [
        ["4", "", "not UTF-8: the byte 0xe9 at line 4, column 19 (save it as UTF-8)"],
        ["5", "", "not UTF-8: the byte 0xe9 at line 6, column 9 (save it as UTF-8)"],
    ]
    again, _ = await import_file(path, ImportRun(database, settings, "latin"), identities())
    assert again == Counts(replayed=4, failed=2)


async def test_a_header_that_is_not_utf8_refuses_the_file(
    tmp_path: Path, database: BoundDatabase, settings: Settings
) -> None:
    path = tmp_path / "header.csv"
    path.write_bytes(b"external_id,channel,metric,score,comment,attributes.caf\xe9\n" + b"x\n")
    with pytest.raises(
        ImportFileError, match="the header \\(line 1\\) is not UTF-8: the byte 0xe9 at line 1"
    ):
        await import_file(path, ImportRun(database, settings, "header"), identities())


async def test_jsonl_lines_say_what_is_wrong_and_a_bom_is_read(
    tmp_path: Path, database: BoundDatabase, settings: Settings, admin: httpx.AsyncClient
) -> None:
    path = tmp_path / "lines.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf"
        + json.dumps({"external_id": "j1", "channel": "app", "comment": "first"}).encode()
        + b'\n{"channel": "app", "comm\n'
        + b'{"channel": "app", "comment": "caf\xe9"}\n'
        + b"[1, 2]\n"
        + json.dumps({"external_id": "j1", "channel": "app", "comment": "last"}).encode()
    )
    counts, _ = await import_file(path, ImportRun(database, settings, "lines"), identities())
    assert counts == Counts(created=1, failed=3, superseded=1)
    assert failures(path) == [
        ["1", "j1", "superseded: line 5 has the same id and is stored instead"],
        ["2", "", "not valid JSON: unexpected end of data (column 25)"],
        ["3", "", "not UTF-8: the byte 0xe9 at column 35 (save it as UTF-8)"],
        ["4", "", "not a JSON object (a line is one feedback body)"],
    ]
    assert (await stored(admin, "lines"))["j1"]["comment"] == "last"


async def test_the_last_row_of_an_id_wins_and_a_rerun_replays(
    tmp_path: Path,
    database: BoundDatabase,
    settings: Settings,
    admin: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same id twice in a file with other content: the later row is the item, on every
    run, and a rerun changes nothing (no `feedback_updated` on the case). In chunks of two,
    so that the rows are in different chunks, and twice in one."""
    monkeypatch.setattr(imports, "CHUNK_ROWS", 2)
    path = tmp_path / "twice.csv"
    path.write_text(
        HEADER
        + "r1,email,nps,2,Old complaint\n"
        + "r2,web,nps,9,\n"
        + "r1,email,nps,1,Newer complaint\n"
        + "r3,web,nps,10,\n"
        + "r3,web,nps,9,\n"
    )
    first, _ = await import_file(path, ImportRun(database, settings, "twice"), identities())
    assert first == Counts(created=3, superseded=2)
    assert failures(path) == [
        ["2", "r1", "superseded: line 4 has the same id and is stored instead"],
        ["5", "r3", "superseded: line 6 has the same id and is stored instead"],
    ]
    for _ in range(2):
        again, _ = await import_file(path, ImportRun(database, settings, "twice"), identities())
        assert again == Counts(replayed=3, superseded=2)
    items = await stored(admin, "twice")
    assert (items["r1"]["comment"], items["r3"]["score"]) == ("Newer complaint", 9)
    case = items["r1"]["case"]
    assert isinstance(case, dict)
    events = (await admin.get(f"/v1/cases/{case['id']}/events")).json()["items"]
    assert [event["type"] for event in events if event["type"] == "feedback_updated"] == []


async def test_a_resumed_import_with_other_options_is_refused_and_then_goes_on(
    tmp_path: Path, database: BoundDatabase, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Going on with other options would store the rest otherwise than the start: refused,
    with what differs and how to start over; the same options go on with the counts kept."""
    monkeypatch.setattr(imports, "CHUNK_ROWS", 2)
    path = tmp_path / "resume.csv"
    path.write_text(
        "external_id,channel,metric,score,submitted_at\n"
        + "old-1,web,nps,2,2019-03-01T10:00:00Z\n"
        + "old-2,web,nps,3,2019-03-02T10:00:00Z\n"
        + "".join(f"new-{n},web,nps,{n % 11},\n" for n in range(5))
    )

    def history() -> ImportRun:
        return ImportRun(database, settings, "resume", cases_within=timedelta(days=30))

    def stop_after_first_chunk(rows: int) -> None:
        if rows:
            raise Interrupted

    with pytest.raises(Interrupted):
        await import_file(path, history(), identities(), advance=stop_after_first_chunk)
    every_row = ImportRun(database, settings, "resume")
    mapped = ImportRun(
        database,
        settings,
        "resume",
        ConnectorMapping.model_validate({"metric": "nps", "field": "score"}),
        cases_within=timedelta(days=30),
    )
    with pytest.raises(ImportFileError) as refused:
        await import_file(path, every_row, identities())
    assert "--cases-within 30 days then, every row (-1) now" in str(refused.value)
    assert f"delete {path}.import-state.json to start over" in str(refused.value)
    with pytest.raises(ImportFileError, match="mapping none then, sha256 "):
        await import_file(path, mapped, identities())
    counts, _ = await import_file(path, history(), identities())
    assert counts == Counts(created=7, without_case=2)
    assert not (tmp_path / "resume.csv.import-state.json").exists()


async def test_the_command_refuses_other_options_and_keeps_the_state(
    tmp_path: Path,
    database: BoundDatabase,
    settings: Settings,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through the command's own function: a message, no traceback; nothing is stored."""
    path = tmp_path / "cli-resume.csv"
    path.write_text(HEADER + rows(4))
    monkeypatch.setattr(imports, "CHUNK_ROWS", 2)

    def stop_after_first_chunk(rows: int) -> None:
        if rows:
            raise Interrupted

    with pytest.raises(Interrupted):
        await import_file(
            path,
            ImportRun(database, settings, "cli-resume", cases_within=timedelta(days=30)),
            identities(),
            advance=stop_after_first_chunk,
        )
    state = (tmp_path / "cli-resume.csv.import-state.json").read_text()
    with pytest.raises(SystemExit) as refused:
        await run_import(
            database_url,
            settings,
            path=path,
            source="cli-resume",
            mapping_path=None,
            connector_id=None,
            console=Console(file=io.StringIO()),
            cases_within_days=None,
        )
    assert str(refused.value).startswith("closeloop import: ")
    assert "every row (-1) now" in str(refused.value)
    assert (tmp_path / "cli-resume.csv.import-state.json").read_text() == state


async def test_a_score_no_integer_reads_fails_its_row(
    tmp_path: Path, database: BoundDatabase, settings: Settings
) -> None:
    path = tmp_path / "scores.csv"
    path.write_text(
        HEADER
        + "s1,web,nps,--5,\ns2,web,nps,²,\ns3,web,nps,abc,\ns4,web,nps, -3 ,\ns5,web,nps, 7,\n"
    )
    counts, _ = await import_file(path, ImportRun(database, settings, "scores"), identities())
    assert counts == Counts(created=1, failed=4)
    assert failures(path) == [
        ["2", "s1", "score: Input should be a valid integer"],
        ["3", "s2", "score: Input should be a valid integer"],
        ["4", "s3", "score: Input should be a valid integer"],
        ["5", "s4", "score: nps scores run from 0 to 10"],
    ]


async def test_blank_lines_before_the_header_are_skipped(
    tmp_path: Path, database: BoundDatabase, settings: Settings
) -> None:
    path = tmp_path / "blank.csv"
    path.write_text("\n  \n" + HEADER + rows(2) + "\n" + rows(1, start=2))
    counts, _ = await import_file(path, ImportRun(database, settings, "blank"), identities())
    assert counts == Counts(created=3)


MAPPING = {
    "metric": "nps",
    "field": "Score",
    "submitted_at": "When",
    "response_id": "Id",
}


async def test_a_mapped_time_cell_of_digits_is_unix_seconds(
    tmp_path: Path, database: BoundDatabase, settings: Settings, admin: httpx.AsyncClient
) -> None:
    """Eight digits stay a date (ISO 8601's basic form), as before."""
    path = tmp_path / "seconds.csv"
    path.write_text("Id,Score,When\nu1,9,1700000000\nu2,9,20240301\nu3,9,99999999999999\n")
    run = ImportRun(database, settings, "seconds", ConnectorMapping.model_validate(MAPPING))
    counts, _ = await import_file(path, run, identities())
    assert counts == Counts(created=2, failed=1)
    items = await stored(admin, "seconds")
    assert items["u1"]["submitted_at"] == "2023-11-14T22:13:20Z"
    assert items["u2"]["submitted_at"] == "2024-03-01T00:00:00Z"
    assert failures(path) == [["4", "u3", "When: Unix seconds within the years 1 to 9999"]]


def test_a_webhooks_time_text_of_digits_is_still_refused() -> None:
    """A tool's JSON says Unix seconds as a number: its text stays ISO 8601 only."""
    assert read_time(1700000000, "t") == (datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC), False)
    with pytest.raises(ValidationFailed):
        read_time("1700000000", "t")


async def test_a_row_the_mapping_cannot_read_keeps_its_id_in_the_failures(
    tmp_path: Path, database: BoundDatabase, settings: Settings
) -> None:
    path = tmp_path / "unread.csv"
    path.write_text("Id,Score,When\nv1,x,\n")
    run = ImportRun(database, settings, "unread", ConnectorMapping.model_validate(MAPPING))
    counts, _ = await import_file(path, run, identities())
    assert counts == Counts(failed=1)
    [[line, external_id, reason]] = failures(path)
    assert (line, external_id) == ("2", "v1")
    assert "`x` is not a score" in reason


async def test_the_total_is_the_rows_the_import_counts(
    tmp_path: Path, database: BoundDatabase, settings: Settings
) -> None:
    """Multi-line cells, blank lines, CR-only line ends and no final line break."""
    path = tmp_path / "total.csv"
    body = HEADER + 't1,web,nps,3,"a\nb\nc"\n\n' + rows(3) + "t2,web,nps,9,last"
    path.write_text(body)
    totals: list[int] = []
    done: list[int] = []
    run = ImportRun(database, settings, "total")
    counts, _ = await import_file(path, run, identities(), advance=done.append, total=totals.append)
    assert totals == [sum(done)] == [counts.rows] == [5]
    old_mac = tmp_path / "old-mac.csv"
    old_mac.write_bytes(body.replace("\n", "\r").encode())
    totals.clear()
    counts, _ = await import_file(
        old_mac, ImportRun(database, settings, "mac"), identities(), total=totals.append
    )
    assert totals == [counts.rows] == [counts.created] == [5]


async def test_a_column_the_api_does_not_know_refuses_the_file_before_any_row(
    tmp_path: Path, database: BoundDatabase, settings: Settings, admin: httpx.AsyncClient
) -> None:
    path = tmp_path / "plan.csv"
    path.write_text("external_id,channel,metric,score,plan\np1,web,nps,9,pro\n")
    with pytest.raises(ImportFileError) as refused:
        await import_file(path, ImportRun(database, settings, "plan"), identities())
    assert "`plan`: not a field of the API" in str(refused.value)
    assert "`attributes.plan`" in str(refused.value)
    assert not imports.failures_path(path).exists()
    assert await stored(admin, "plan") == {}
    path.write_text("external_id,comment,channel,comment\n")
    with pytest.raises(ImportFileError, match="the header names `comment` twice"):
        await import_file(path, ImportRun(database, settings, "plan"), identities())


async def test_an_invalid_source_is_refused_once(
    tmp_path: Path, database: BoundDatabase, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "source.csv"
    path.write_text(HEADER + rows(2))
    with pytest.raises(ImportFileError, match="the source `Legacy NPS` must be a slug"):
        await import_file(path, ImportRun(database, settings, "Legacy NPS"), identities())
    with pytest.raises(SystemExit) as refused:
        build_parser().parse_args(["import", str(path), "--source", "Legacy NPS"])
    assert refused.value.code == 2
    assert "argument --source: `Legacy NPS` must be a slug" in capsys.readouterr().err


@pytest.mark.parametrize("days", ["nan", "NaN", "soon"])
def test_cases_within_that_is_no_number_is_an_argument_error(
    days: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as refused:
        build_parser().parse_args(["import", "f.csv", "--source", "s", "--cases-within", days])
    assert refused.value.code == 2
    assert f"argument --cases-within: `{days}` is not a number of days" in capsys.readouterr().err


@pytest.mark.parametrize("days", ["inf", "1e9", "800000"])
async def test_cases_within_past_year_one_runs_without_a_traceback(
    days: str, tmp_path: Path, settings: Settings, database_url: str
) -> None:
    """Through the command's own function (the rows fail validation: nothing is stored)."""
    path = tmp_path / "forever.csv"
    path.write_text(HEADER + "f1,web,nps,11,\n")
    parsed = build_parser().parse_args(["import", str(path), "--cases-within", days])
    counts = await run_import(
        database_url,
        settings,
        path=path,
        source="forever",
        mapping_path=None,
        connector_id=None,
        console=Console(file=io.StringIO()),
        cases_within_days=parsed.cases_within,
    )
    assert counts == Counts(failed=1)


async def test_a_window_reaching_before_year_one_opens_cases_for_old_rows(
    tmp_path: Path, database: BoundDatabase, settings: Settings, admin: httpx.AsyncClient
) -> None:
    path = tmp_path / "old.csv"
    path.write_text(HEADER.replace("comment", "submitted_at") + "o1,web,nps,2,2019-03-01\n")
    run = ImportRun(database, settings, "old", cases_within=timedelta(days=800_000))
    counts, _ = await import_file(path, run, identities())
    assert counts == Counts(created=1)
    assert (await stored(admin, "old"))["o1"]["case"] is not None
