"""An export's rows, read one by one as feedback bodies (or as what is wrong with them).

`closeloop import` (app/connectors/imports.py) stores what this reads: a CSV in the API's own
shape (a column per field, dotted for nested ones) or a tool's export read through its mapping,
and JSON lines either way. Read twice, by the same records: whole before anything is stored
(`survey`: its rows, the ids a later row repeats), then row by row as it is stored.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import itertools
import re
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import orjson
from pydantic import BaseModel

from app.connectors.events import State, ToolEvent, flatten
from app.connectors.mapping import ConnectorMapping, external_id_of, feedback_body
from app.connectors.signatures import Tool
from app.core.errors import AppError, Problem
from app.feedback.schemas import Customer, FeedbackCreate, InReplyTo

# Keys of a CSV without a mapping whose cells are not text.
_INTEGERS = frozenset({"score"})
_BOOLEANS = frozenset({"customer.contact_consent"})
# The columns of a CSV without a mapping: the API's fields, nested ones dotted, and
# `attributes.<name>` for any name.
_NESTED: dict[str, type[BaseModel]] = {"customer": Customer, "in_reply_to": InReplyTo}
_COLUMNS = frozenset(
    [name for name in FeedbackCreate.model_fields if name not in (*_NESTED, "attributes")]
    + [f"{head}.{name}" for head, model in _NESTED.items() for name in model.model_fields]
)
# A mapped time cell of digits is Unix seconds, from nine digits on (1973 on): eight are a
# date in ISO 8601's basic form (`20240301`), read as such by `read_time`.
_UNIX_SECONDS = re.compile(r"[0-9]{9,}(?:\.[0-9]+)?")
_OPEN_QUOTE = (
    'not CSV: a quoted cell starts on this line and is not closed (a missing `"`?); '
    "the lines after it are read as rows of their own"
)


class ImportFileError(Exception):
    """The import cannot run at all (not .csv or .jsonl, no header, a column the API does not
    know, an interrupted run's other options): said once, before anything is stored."""


@dataclass(slots=True)
class Row:
    line: int
    item: dict[str, Any] | None
    error: str | None = None
    # The row's own id where it names one, also when it cannot be read as an item.
    external_id: str | None = None
    # A later line with the same id, stored instead of this one (the last row wins).
    superseded_by: int | None = None


@dataclass
class Survey:
    rows: int  # the whole file's, read before any of it is stored
    # The ids a later row repeats -> the last line with each: only that row is stored.
    last_line_of: dict[str, int]


class Export(Protocol):
    """How an export reads: whose rows (the source) and, for a tool's export, its mapping."""

    source: str
    mapping: ConnectorMapping | None
    tool: Tool | None


def problem_text(problem: Problem | dict[str, Any]) -> str:
    data = problem if isinstance(problem, dict) else problem.model_dump()
    errors = data.get("errors") or []
    if errors:
        return "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return str(data.get("detail") or data.get("title"))


def _row_id(record: dict[str, Any]) -> str:
    """A row without an id of its own: the hash of what it says, the same on every run."""
    digest = hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return "import:" + digest[:32]


def _response_id(fields: Mapping[str, Any], mapping: ConnectorMapping) -> str | None:
    value = fields.get(mapping.response_id) if mapping.response_id is not None else None
    return None if value in (None, "") else str(value)


def row_id(fields: Mapping[str, Any], run: Export) -> str | None:
    """The id a row names, as it is stored (the `external_id` column, or the mapping's
    `response_id` one, flattened for JSON); None for a row that names none."""
    if run.mapping is None:
        value = fields.get("external_id")
        return value if isinstance(value, str) and value != "" else None
    response_id = _response_id(fields, run.mapping)
    return None if response_id is None else external_id_of(run.tool, response_id)


def _integer(value: str) -> int | str:
    """A whole number in ASCII digits; anything else stays text, which validation refuses
    with its reason (`²` is a digit to str.isdigit, not to int)."""
    text = value.strip()
    if text.removeprefix("-").isdigit() and text.isascii() and len(text) <= 20:
        return int(text)
    return value


def _csv_item(record: dict[str, str]) -> dict[str, Any]:
    """A CSV in the API's own shape: a column per field, dotted for nested ones
    (`customer.email`, `attributes.plan`), tags separated by `;`."""
    item: dict[str, Any] = {}
    for key, value in record.items():
        if value == "":
            continue
        parsed: Any = value
        if key in _INTEGERS:
            parsed = _integer(value)
        elif key in _BOOLEANS:
            parsed = value.strip().lower() in ("true", "1", "yes")
        elif key == "tags":
            parsed = [tag.strip() for tag in value.split(";") if tag.strip()]
        head, _, rest = key.partition(".")
        if rest:
            item.setdefault(head, {})[rest] = parsed
        else:
            item[key] = parsed
    return item


def _with_unix_seconds(fields: dict[str, Any], key: str | None) -> dict[str, Any]:
    """A file's cells are text: a time cell of digits is Unix seconds, as a tool's JSON number
    is (`read_time` reads a webhook's text only as ISO 8601)."""
    value = None if key is None else fields.get(key)
    if (
        key is not None
        and isinstance(value, str)
        and _UNIX_SECONDS.fullmatch(text := value.strip())
    ):
        return {**fields, key: float(text) if "." in text else int(text)}
    return fields


def to_item(
    record: dict[str, Any], fields: dict[str, Any], run: Export, *, from_csv: bool
) -> dict[str, Any]:
    """One row (`fields`: the record flattened, for a mapping of JSON) as a feedback body; a
    row the mapping cannot read raises its problem."""
    if run.mapping is None:
        item = _csv_item(record) if from_csv else dict(record)
        item["source"] = run.source
        item.setdefault("external_id", _row_id(record))
        return item
    response_id = _response_id(fields, run.mapping)
    event = ToolEvent(
        response_id=_row_id(record) if response_id is None else response_id,
        delivery_id=None,
        state=State.COMPLETE,
        fields=_with_unix_seconds(fields, run.mapping.submitted_at),
    )
    return feedback_body(event, run.mapping, tool=run.tool, source=run.source)


def survey(path: Path, run: Export) -> Survey:
    """Read the whole file once: its rows (the progress bar's total) and the ids that a later
    row repeats; a file that cannot be imported raises ImportFileError."""
    rows = 0
    last_line: dict[str, int] = {}
    repeated: set[str] = set()
    try:
        with _table(path, run) as table:
            for line, value, _ in table.records:
                rows += 1
                if value is None:
                    continue
                key = row_id(_fields(value, table.header, run)[1], run)
                if key is not None:
                    if key in last_line:
                        repeated.add(key)
                    last_line[key] = line
    except OSError as exc:
        raise ImportFileError(f"{path}: {exc.strerror}") from None
    return Survey(rows, {key: last_line[key] for key in repeated})


def _fields(
    value: list[str] | dict[str, Any], header: list[str] | None, run: Export
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A record as a row (a CSV's cells by their header's names: a name's last cell) and its
    fields (a JSON object flattened for a mapping)."""
    if isinstance(value, list):
        record = dict(zip(header or [], value, strict=True))
        return record, record
    return value, value if run.mapping is None else flatten(value)


def read_rows(
    path: Path, run: Export, start_line: int, last_line_of: Mapping[str, int]
) -> Iterator[Row]:
    """Every row from `start_line` on, as an item or as what is wrong with it; a row whose id
    a later row repeats (`last_line_of`, from `survey`) is superseded by it."""
    with _table(path, run) as table:
        header = table.header or []
        for line, value, error in table.records:
            if line < start_line:
                continue
            if value is None:
                yield Row(line, None, error)
                continue
            record, fields = _fields(value, table.header, run)
            key = row_id(fields, run)
            last = last_line_of.get(key, line) if key is not None else line
            if last != line:
                reason = f"superseded: line {last} has the same id and is stored instead"
                yield Row(line, None, reason, key, superseded_by=last)
                continue
            try:
                yield Row(line, to_item(record, fields, run, from_csv=bool(header)))
            except AppError as exc:
                yield Row(line, None, problem_text(exc.to_problem()), key)


# A record: its first line, and its cells (a CSV's), its object (JSON's) or what is wrong.
_Record = tuple[int, list[str] | dict[str, Any] | None, str | None]


@dataclass
class _Table:
    header: list[str] | None  # a CSV's
    records: Iterator[_Record]


@contextmanager
def _table(path: Path, run: Export) -> Iterator[_Table]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with path.open("rb") as lines:
            yield _Table(None, _jsonl_records(lines))
    elif suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as handle:
            records = _csv_records(handle)
            header = _header(path, records, run)
            yield _Table(header, _csv_rows(records, header))
    else:
        raise ImportFileError(f"{path}: a .csv or .jsonl file")


def _not_utf8(text: bytes | str, line: int | None = None) -> str | None:
    """Where a line is not UTF-8 (text read with surrogateescape holds its bytes as
    U+DC80-U+DCFF), or None."""
    try:
        text.decode("utf-8") if isinstance(text, bytes) else text.encode("utf-8")
    except (UnicodeDecodeError, UnicodeEncodeError) as exc:
        at = exc.start
        byte = text[at] if isinstance(text, bytes) else ord(text[at]) - 0xDC00
        where = f"line {line}, " if line is not None else ""
        return f"not UTF-8: the byte 0x{byte:02x} at {where}column {at + 1} (save it as UTF-8)"
    return None


def _jsonl_records(lines: IO[bytes]) -> Iterator[_Record]:
    for number, text in enumerate(lines, start=1):
        text = (text.removeprefix(codecs.BOM_UTF8) if number == 1 else text).strip()
        if not text:
            continue
        try:
            record = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            yield number, None, _not_utf8(text) or f"not valid JSON: {exc.msg} (column {exc.colno})"
            continue
        if isinstance(record, dict):
            yield number, record, None
        else:
            yield number, None, "not a JSON object (a line is one feedback body)"


class _QuoteOpenAtEnd(Exception):
    """The file ends inside a quoted cell."""


class _Lines:
    """A CSV file's physical lines as csv.reader takes them, with the record's lines (`taken`,
    to read a broken one again from its second) and those not UTF-8 (surrogateescape's)."""

    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle
        self.again: deque[str] = deque()  # lines to read again, first first
        self.taken: list[str] = []
        self.not_utf8: list[str] = []

    def read(self, number: int) -> Iterator[str]:
        """The lines put back to read again, then the file's; the first is line `number`."""
        taken, not_utf8 = self.taken, self.not_utf8
        for line in itertools.chain(_drained(self.again), self._handle):
            taken.append(line)
            if not line.isascii() and (problem := _not_utf8(line, number)):
                not_utf8.append(problem)
            number += 1
            yield line
        # csv.reader asks for a line within a record only in a quoted cell.
        if taken:
            raise _QuoteOpenAtEnd


def _drained(lines: deque[str]) -> Iterator[str]:
    while lines:
        yield lines.popleft()


def _csv_records(handle: IO[str]) -> Iterator[_Record]:
    """A CSV's records, each with the line it starts on (blank lines too: `[]`). A quoted cell
    may hold commas and line breaks; one that never closes (the file ends in it, or it closes
    where no cell can end: the strict dialect's errors) is its first line's failure, and the
    lines after that one are read again as rows, so a stray `"` costs one row, not the file."""
    lines = _Lines(handle)
    taken, not_utf8 = lines.taken, lines.not_utf8
    first = 1  # the line the reader's first line is
    reader = csv.reader(lines.read(first), strict=True)
    while True:
        start = first + reader.line_num
        taken.clear()
        not_utf8.clear()
        try:
            cells = next(reader)
        except StopIteration:
            return
        except (csv.Error, _QuoteOpenAtEnd) as exc:
            if len(taken) > 1 or isinstance(exc, _QuoteOpenAtEnd):
                first = start + 1
                lines.again.extendleft(reversed(taken[1:]))
                reader = csv.reader(lines.read(first), strict=True)
                yield start, None, _OPEN_QUOTE
            else:
                yield start, None, f"not CSV: {exc}"
            continue
        yield (start, None, not_utf8[0]) if not_utf8 else (start, cells, None)


def _header(path: Path, records: Iterator[_Record], run: Export) -> list[str]:
    """The first record that is not blank, if it can be a header."""
    for line, cells, error in records:
        if not isinstance(cells, list):
            raise ImportFileError(f"{path}: the header (line {line}) is {error}")
        if any(cell.strip() for cell in cells):
            _check_header(path, cells, run)
            return cells
    raise ImportFileError(f"{path}: no header row")


def _csv_rows(records: Iterator[_Record], header: list[str]) -> Iterator[_Record]:
    width = len(header)
    for record in records:
        cells = record[1]
        if cells is None or len(cells) == width:
            yield record
        elif cells:  # a blank line is no row
            yield record[0], None, f"{len(cells)} cells where the header has {width}"


def _check_header(path: Path, header: list[str], run: Export) -> None:
    """A CSV without a mapping has the API's fields as columns: one it does not know would fail
    every row alike, so the file is refused once, up front."""
    if run.mapping is not None:
        return
    twice = sorted({f"`{name}`" for name in header if name and header.count(name) > 1})
    if twice:
        raise ImportFileError(f"{path}: the header names {', '.join(twice)} twice")
    unknown = [name for name in header if name and not _known(name)]
    if unknown:
        raise ImportFileError(
            f"{path}: {', '.join(f'`{name}`' for name in unknown)}: not a field of the API, "
            f"the columns of a CSV without --mapping ({', '.join(sorted(_COLUMNS))}, "
            "attributes.<name>). Name a value of your own "
            f"{', '.join(f'`attributes.{name}`' for name in unknown)}, or give --mapping"
        )


def _known(column: str) -> bool:
    return column in _COLUMNS or (column.startswith("attributes.") and column != "attributes.")
