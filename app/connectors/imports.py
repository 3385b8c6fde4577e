"""`closeloop import FILE`: years of survey exports, through the batch ingest.

Rows go in chunks of 1,000 to the same function as `POST /v1/feedback/batch` (one statement a
chunk); a thread reads and prepares the next chunk while PostgreSQL stores the two before it,
each in its own transaction. A row that says something else than the item stored under its id
is an update, through PUT's path. Reading the file is app/connectors/rows.py.

Safe to run again: each row has a stable id (the mapping's `response_id` column, else a hash
of the row), so a second run replays; of rows naming the same id, the last one in the file is
stored and the earlier ones are superseded, so a rerun still replays. Resumable: after each
chunk (chunks finish in order) the next line to read is written to `FILE.import-state.json`,
with the options that change what is stored; a run that finds it (same file, same size and
time) starts there, or refuses when its options differ, and removes it when done.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import itertools
import json
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import TypeAdapter, ValidationError

from app.connectors.mapping import ConnectorMapping
from app.connectors.rows import ImportFileError, Row, problem_text, read_rows, survey
from app.connectors.signatures import Tool
from app.core.auth import Principal, Scope
from app.core.config import Settings
from app.core.db import Database, raw_transaction, utcnow
from app.core.errors import AppError, validation_problem
from app.core.heap import freeze_loaded
from app.feedback import ingest as feedback
from app.feedback.batch import PreparedBatch, prepare_batch, store_batch
from app.feedback.identity import IdentitySecrets
from app.feedback.schemas import FeedbackCreate, SourceSlug
from app.routing.evaluation import RoutingCache

CHUNK_ROWS = 1_000
STORES_AT_ONCE = 2
_SOURCE = TypeAdapter(SourceSlug)


@dataclass
class Counts:
    created: int = 0
    replayed: int = 0
    updated: int = 0
    failed: int = 0
    # Rows whose id a later row of the file repeats: that one is stored instead.
    superseded: int = 0
    # Of the rows created or updated: negative ones submitted before the run's `cases_since`,
    # stored (and counted in reports) on no case.
    without_case: int = 0

    @property
    def rows(self) -> int:
        return self.created + self.replayed + self.updated + self.failed + self.superseded

    def add(self, other: Counts) -> None:
        for name in (f.name for f in fields(self)):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class ImportRun:
    """What an import needs besides the file."""

    database: Database
    settings: Settings
    source: str
    mapping: ConnectorMapping | None = None
    tool: Tool | None = None
    # The connector whose items these rows may update (else the import's own id per source).
    principal_id: uuid.UUID | None = None
    routing: RoutingCache = field(default_factory=RoutingCache)
    # Rows submitted before this open no case (history: no agent can act on a complaint of
    # years ago, and each would breach its SLA at once); None: every negative row does.
    cases_since: datetime | None = None
    # Instead of `cases_since`, the window before the run's start (resumed: the interrupted
    # run's) it is set from.
    cases_within: timedelta | None = None


@dataclass
class Failure:
    line: int
    external_id: str | None
    reason: str


@dataclass
class _Chunk:
    rows: list[Row]
    # The rows that read as items, and those items validated and derived.
    good: list[Row]
    batch: PreparedBatch


def _prepare_chunk(run: ImportRun, principal: Principal, rows: list[Row]) -> _Chunk:
    good = [row for row in rows if row.item is not None]
    batch = prepare_batch(
        [row.item for row in good if row.item is not None],
        principal=principal,
        settings=run.settings,
        now=utcnow(),
    )
    return _Chunk(rows, good, batch)


async def _store_chunk(
    run: ImportRun, principal: Principal, identities: IdentitySecrets, chunk: _Chunk
) -> tuple[Counts, list[Failure]]:
    counts = Counts()
    failures = []
    for row in chunk.rows:
        if row.item is None:
            if row.superseded_by is not None:  # listed with the failures, for its line
                counts.superseded += 1
            failures.append(Failure(row.line, row.external_id, row.error or "not readable"))
    async with raw_transaction(run.database) as raw:
        results = await store_batch(
            raw,
            chunk.batch,
            principal=principal,
            routing=run.routing,
            identities=identities,
            cases_since=run.cases_since,
        )
    stored = {entry.index: entry.row for entry in chunk.batch.accepted}
    for index, (row, result) in enumerate(zip(chunk.good, results, strict=True)):
        assert row.item is not None
        external_id = row.item.get("external_id")
        if result.status == "created":
            counts.created += 1
            counts.without_case += _without_case(run, stored[index])
        elif result.status == "replayed":
            counts.replayed += 1
        elif result.problem is not None and result.problem.get("code") == "conflict":
            try:
                async with raw_transaction(run.database) as raw:
                    updated = await feedback.put_feedback(
                        raw,
                        FeedbackCreate.model_validate(row.item),
                        principal=principal,
                        settings=run.settings,
                        routing=run.routing,
                        cases_since=run.cases_since,
                    )
            except ValidationError as exc:
                failures.append(
                    Failure(
                        row.line, external_id, problem_text(validation_problem(exc).to_problem())
                    )
                )
            except AppError as exc:
                reason = problem_text(exc.to_problem())
                if exc.status == 404:
                    reason = "an item under this id was stored by another key: not changed"
                failures.append(Failure(row.line, external_id, reason))
            else:
                counts.updated += 1
                counts.without_case += _without_case(run, updated.feedback)
        else:
            failures.append(Failure(row.line, external_id, problem_text(result.problem or {})))
    counts.failed = len(failures) - counts.superseded
    failures.sort(key=lambda failure: failure.line)
    return counts, failures


def _without_case(run: ImportRun, item: dict[str, Any]) -> int:
    """1 for a negative item left on no case as history: a row the batch stored (its case,
    if any, in `_case`) or the document of one updated (in `case`)."""
    on_case = item.get("_case", item.get("case"))
    if run.cases_since is None or item["sentiment"] != "negative" or on_case is not None:
        return 0
    submitted = item["submitted_at"]
    if isinstance(submitted, str):
        submitted = datetime.fromisoformat(submitted)
    return 1 if submitted < run.cases_since else 0


def _state_path(path: Path) -> Path:
    return path.with_name(path.name + ".import-state.json")


def failures_path(path: Path) -> Path:
    return path.with_name(path.name + ".failures.csv")


def _fingerprint(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _options(run: ImportRun) -> dict[str, str]:
    """What changes how rows are stored, as the command line says it."""
    mapping = "none"
    if run.mapping is not None:
        digest = hashlib.sha256(run.mapping.model_dump_json().encode()).hexdigest()
        mapping = f"sha256 {digest[:12]}"
    if run.cases_within is not None:
        cases = f"{run.cases_within / timedelta(days=1):g} days"
    elif run.cases_since is not None:
        cases = f"since {run.cases_since.isoformat()}"
    else:
        cases = "every row (-1)"
    return {
        "--source": run.source,
        "--connector": "none" if run.principal_id is None else f"{run.tool} ({run.principal_id})",
        "mapping": mapping,
        "--cases-within": cases,
    }


def load_state(path: Path, options: dict[str, str]) -> tuple[int, Counts, datetime | None]:
    """Where an interrupted run of this file stopped: the next line, its counts so far and its
    `cases_since`. A run with other options is refused: going on would store the rest of the
    file otherwise than its start (deleting the state starts over)."""
    state_file = _state_path(path)
    if not state_file.exists():
        return 1, Counts(), None
    try:
        state = json.loads(state_file.read_text())
        if state["file"] != _fingerprint(path):
            return 1, Counts(), None  # the file changed since: start over
        then = state.get("options") or {}
        next_line, counts = int(state["next_line"]), Counts(**state["counts"])
        since = state.get("cases_since")
        cases_since = None if since is None else datetime.fromisoformat(since)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ImportFileError(
            f"{state_file} cannot be read ({exc}); delete it to start over"
        ) from None
    changed = [
        f"{name} {then.get(name, 'not recorded')} then, {value} now"
        for name, value in options.items()
        if then.get(name) != value
    ]
    if changed:
        raise ImportFileError(
            f"{path}: an interrupted import of this file stopped before line {next_line} with "
            f"other options ({'; '.join(changed)}). Run it again with the options it had to go "
            f"on, or delete {state_file} to start over with these"
        )
    return next_line, counts, cases_since


def _save_state(path: Path, state: dict[str, Any], next_line: int, counts: Counts) -> None:
    document = {**state, "next_line": next_line, "counts": asdict(counts)}
    temporary = _state_path(path).with_suffix(".tmp")
    temporary.write_text(json.dumps(document))
    temporary.replace(_state_path(path))


def _since(window: timedelta) -> datetime | None:
    """The start of a window before now; None (every row) for one reaching before year 1."""
    try:
        return utcnow() - window
    except OverflowError:
        return None


def source_problem(source: str) -> str | None:
    """What is wrong with a source as the rows' source, or None."""
    try:
        _SOURCE.validate_python(source)
    except ValidationError as exc:
        return str(exc.errors()[0]["msg"])
    return None


def _principal(run: ImportRun) -> Principal:
    key_id = run.principal_id or uuid.uuid5(uuid.NAMESPACE_URL, f"closeloop:import:{run.source}")
    return Principal(
        key_id=key_id,
        name=f"import {run.source}",
        scopes=frozenset({Scope.FEEDBACK_WRITE}),
        allowed_sources=frozenset({run.source}),
        allowed_origins=None,
    )


async def import_file(
    path: Path,
    run: ImportRun,
    identities: IdentitySecrets,
    *,
    advance: Callable[[int], None] = lambda rows: None,
    total: Callable[[int], None] = lambda rows: None,
) -> tuple[Counts, Path]:
    """Import the file (from where an interrupted run stopped); answer the counts and the
    path of the failures' CSV (line, external id, reason). What stops the whole import (an
    unknown column, an interrupted run's other options) raises ImportFileError before anything
    is stored; `total` is told the file's rows before the first is."""
    freeze_loaded()
    problem = source_problem(run.source)
    if problem is not None:
        raise ImportFileError(f"the source `{run.source}` {problem}")
    options = _options(run)
    start_line, counts, cases_since = load_state(path, options)
    if run.cases_within is not None:
        run.cases_since = cases_since if start_line > 1 else _since(run.cases_within)
    state = {
        "file": _fingerprint(path),
        "options": options,
        "cases_since": None if run.cases_since is None else run.cases_since.isoformat(),
    }
    found = await asyncio.to_thread(survey, path, run)
    total(found.rows)
    advance(counts.rows)
    principal = _principal(run)
    out = failures_path(path)
    with out.open("a" if start_line > 1 else "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if start_line == 1:
            writer.writerow(["line", "external_id", "reason"])
        rows = read_rows(path, run, start_line, found.last_line_of)

        def next_chunk() -> _Chunk | None:
            chunk = list(itertools.islice(rows, CHUNK_ROWS))
            return _prepare_chunk(run, principal, chunk) if chunk else None

        def finish(chunk: _Chunk, chunk_counts: Counts, failures: list[Failure]) -> None:
            counts.add(chunk_counts)
            writer.writerows((f.line, f.external_id or "", f.reason) for f in failures)
            handle.flush()
            _save_state(path, state, chunk.rows[-1].line + 1, counts)
            advance(len(chunk.rows))

        async def finish_first() -> None:
            chunk, task = storing.popleft()
            try:
                outcome = await task
            except asyncpg.DeadlockDetectedError:
                # Its transaction was rolled back; the chunk beside it goes on. Once more.
                outcome = await _store_chunk(run, principal, identities, chunk)
            finish(chunk, *outcome)

        # The next chunk is read and prepared (pure Python) in a thread while PostgreSQL stores
        # the ones before, two at a time, each in its own transaction: while one waits on its
        # round trips and commit the other has the database. They finish in order, so the state
        # saved is always where every line before it is stored.
        storing: deque[tuple[_Chunk, asyncio.Task[tuple[Counts, list[Failure]]]]] = deque()
        upcoming = asyncio.ensure_future(asyncio.to_thread(next_chunk))
        try:
            while (chunk := await upcoming) is not None:
                upcoming = asyncio.ensure_future(asyncio.to_thread(next_chunk))
                storing.append(
                    (chunk, asyncio.create_task(_store_chunk(run, principal, identities, chunk)))
                )
                if len(storing) == STORES_AT_ONCE:
                    await finish_first()
            while storing:
                await finish_first()
        finally:
            # Interrupted: a chunk still being stored is rolled back (it is read again on the
            # next run). The thread cannot be stopped, but it only reads; let it end before the
            # file it reads from is closed.
            for _, task in storing:
                task.cancel()
            await asyncio.wait([upcoming, *(task for _, task in storing)])
    _state_path(path).unlink(missing_ok=True)
    return counts, out
