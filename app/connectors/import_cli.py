"""The terminal side of `closeloop import`: the options, a progress bar, the summary."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from app.connectors.imports import Counts, ImportRun, import_file
from app.connectors.mapping import ConnectorMapping
from app.connectors.rows import ImportFileError
from app.connectors.service import connector_key_id
from app.connectors.signatures import Tool
from app.core.config import Settings
from app.core.crypto import secret_box
from app.core.db import Database
from app.feedback.identity import IdentitySecrets


class RateColumn(ProgressColumn):
    """Rows a second, as rich measures the task's speed."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:,.0f} rows/s")


def _mapping(path: str | None) -> ConnectorMapping | None:
    if path is None:
        return None
    try:
        return ConnectorMapping.model_validate_json(Path(path).read_bytes())
    except OSError as exc:
        raise SystemExit(f"closeloop import: {path}: {exc.strerror}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise SystemExit(f"closeloop import: {path}: {problems}") from None


async def _connector(database: Database, connector_id: str) -> tuple[uuid.UUID, Tool, str, str]:
    try:
        key = uuid.UUID(connector_id)
    except ValueError:
        raise SystemExit(f"closeloop import: `{connector_id}` is not a connector id") from None
    async with database.raw() as conn:
        row = await conn.fetchrow("SELECT tool, source, mapping FROM connector WHERE id = $1", key)
    if row is None:
        raise SystemExit(f"closeloop import: no connector has the id {connector_id}")
    mapping = row["mapping"] if isinstance(row["mapping"], str) else json.dumps(row["mapping"])
    # Stored as the connector stores (connector_key_id), so its webhooks update these rows.
    return connector_key_id(row["tool"], row["source"]), Tool(row["tool"]), row["source"], mapping


async def run_import(
    url: str,
    settings: Settings,
    *,
    path: Path,
    source: str | None,
    mapping_path: str | None,
    connector_id: str | None,
    console: Console,
    cases_within_days: float | None,
) -> Counts:
    # The settings' options (FEEDBACK_DATABASE_POOLER among them), with the import's own pool.
    database = await Database.connect(url, **(settings.database_options() | {"pool_size": 4}))
    try:
        run = ImportRun(database, settings, source or "", _mapping(mapping_path))
        run.cases_within = _window(cases_within_days)
        if connector_id is not None:
            run.principal_id, run.tool, connector_source, stored = await _connector(
                database, connector_id
            )
            if source is not None and source != connector_source:
                raise SystemExit(
                    f"closeloop import: the connector is for the source `{connector_source}`"
                )
            run.source = connector_source
            if run.mapping is None:
                run.mapping = ConnectorMapping.model_validate_json(stored)
        if not run.source:
            raise SystemExit("closeloop import: give --source (or --connector)")
        identities = IdentitySecrets(secret_box(settings.secret_key))
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            RateColumn(),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            console=console,
        ) as progress:
            task = progress.add_task(path.name, total=None)
            counts, failures = await import_file(
                path,
                run,
                identities,
                advance=lambda rows: progress.advance(task, rows),
                total=lambda rows: progress.update(task, total=rows),
            )
    except ImportFileError as exc:
        raise SystemExit(f"closeloop import: {exc}") from None
    finally:
        await database.close()
    console.print(
        f"created {counts.created}, replayed {counts.replayed}, updated {counts.updated}, "
        f"failed {counts.failed}"
    )
    if counts.superseded:
        console.print(f"superseded by a later row with the same id: {counts.superseded}")
    if counts.without_case:
        history = "history"
        if run.cases_since is not None:
            history = f"negative, submitted before {run.cases_since:%Y-%m-%d %H:%M} UTC"
        console.print(f"stored on no case ({history}; see --cases-within): {counts.without_case}")
    if counts.failed or counts.superseded:
        console.print(f"failures (line, external id, reason): {failures}")
    return counts


def _window(days: float | None) -> timedelta | None:
    """--cases-within as a window; None (every row opens its case) for one past what a
    timedelta holds (the import reads one reaching before year 1 so too)."""
    if days is None:
        return None
    try:
        return timedelta(days=days)
    except OverflowError:
        return None


def import_command(
    url: str,
    settings: Settings,
    *,
    file: str,
    source: str | None,
    mapping: str | None,
    connector: str | None,
    cases_within_days: float | None,
) -> int:
    """Run the import; exit 0 when every row went in, 1 when some failed, 130 on Ctrl-C
    (run the same command again to go on from where it stopped)."""
    console = Console(stderr=True)
    path = Path(file)
    if not path.is_file():
        raise SystemExit(f"closeloop import: {file}: no such file")
    try:
        counts = asyncio.run(
            run_import(
                url,
                settings,
                path=path,
                source=source,
                mapping_path=mapping,
                connector_id=connector,
                console=console,
                cases_within_days=cases_within_days,
            )
        )
    except KeyboardInterrupt:
        console.print("interrupted: run the same command again to go on where it stopped")
        return 130
    return 1 if counts.failed else 0
