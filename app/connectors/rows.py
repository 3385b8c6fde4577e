"""An export's lines, read one by one as feedback bodies (or as what is wrong with them).

`closeloop import` (app/connectors/imports.py) stores what this reads: a CSV in the API's own
shape (a column per field, dotted for nested ones) or a tool's export read through its mapping,
and JSON lines either way.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from app.connectors.events import State, ToolEvent, flatten
from app.connectors.mapping import ConnectorMapping, feedback_body
from app.connectors.signatures import Tool
from app.core.errors import AppError, Problem

# Keys of a CSV without a mapping whose cells are not text.
_INTEGERS = frozenset({"score"})
_BOOLEANS = frozenset({"customer.contact_consent"})


class ImportFileError(Exception):
    """The file cannot be imported at all (not .csv or .jsonl, no header, unreadable)."""


@dataclass
class Row:
    line: int
    item: dict[str, Any] | None
    error: str | None = None


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


def _csv_item(record: dict[str, str]) -> dict[str, Any]:
    """A CSV in the API's own shape: a column per field, dotted for nested ones
    (`customer.email`, `attributes.plan`), tags separated by `;`."""
    item: dict[str, Any] = {}
    for key, value in record.items():
        if value == "":
            continue
        parsed: Any = value
        if key in _INTEGERS and value.strip().lstrip("-").isdigit():
            parsed = int(value)
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


def to_item(record: dict[str, Any], run: Export, *, from_csv: bool) -> dict[str, Any]:
    """One row as a feedback body; a row the mapping cannot read raises its problem."""
    if run.mapping is None:
        item = _csv_item(record) if from_csv else dict(record)
        item["source"] = run.source
        item.setdefault("external_id", _row_id(record))
        return item
    fields = record if from_csv else flatten(record)
    key = run.mapping.response_id
    response_id = fields.get(key) if key is not None else None
    event = ToolEvent(
        response_id=str(response_id) if response_id not in (None, "") else _row_id(record),
        delivery_id=None,
        state=State.COMPLETE,
        fields=fields,
    )
    return feedback_body(event, run.mapping, tool=run.tool, source=run.source)


def read_rows(path: Path, run: Export, start_line: int) -> Iterator[Row]:
    """Every row from `start_line` on, as an item or as what is wrong with it."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        yield from _jsonl_rows(path, run, start_line)
    elif suffix == ".csv":
        yield from _csv_rows(path, run, start_line)
    else:
        raise ImportFileError(f"{path}: a .csv or .jsonl file")


def _converted(line: int, record: dict[str, Any], run: Export, *, from_csv: bool) -> Row:
    try:
        return Row(line, to_item(record, run, from_csv=from_csv))
    except AppError as exc:
        return Row(line, None, problem_text(exc.to_problem()))


def _jsonl_rows(path: Path, run: Export, start_line: int) -> Iterator[Row]:
    with path.open("rb") as lines:
        for number, text in enumerate(lines, start=1):
            if number < start_line or not text.strip():
                continue
            try:
                record = orjson.loads(text)
            except orjson.JSONDecodeError:
                yield Row(number, None, "not a JSON object")
                continue
            if not isinstance(record, dict):
                yield Row(number, None, "not a JSON object")
                continue
            yield _converted(number, record, run, from_csv=False)


def _csv_rows(path: Path, run: Export, start_line: int) -> Iterator[Row]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except (StopIteration, csv.Error) as exc:
            raise ImportFileError(f"{path}: no header row") from exc
        line = reader.line_num + 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield Row(line, None, f"not CSV: {exc}")
                line = reader.line_num + 1
                continue
            number, line = line, reader.line_num + 1
            if number < start_line or not cells:
                continue
            if len(cells) != len(header):
                yield Row(number, None, f"{len(cells)} cells where the header has {len(header)}")
                continue
            record = dict(zip(header, cells, strict=True))
            yield _converted(number, record, run, from_csv=True)


def count_rows(path: Path) -> int:
    """Lines in the file (less a CSV's header): the progress bar's total."""
    count = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            count += block.count(b"\n")
    return max(count - (1 if path.suffix.lower() == ".csv" else 0), 0)
