"""The command line: closeloop serve | worker | migrate | create-api-key | export-openapi |
import.

Every command reads the same settings. Without FEEDBACK_DATABASE_URL they share the embedded
PostgreSQL under FEEDBACK_DATA_DIR: the first to need it starts it, the last to finish stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging.config
import math
import os
import signal
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from pydantic import ValidationError

from app.core.config import Settings, get_settings
from app.core.logging import logging_config

# `closeloop import`: rows submitted longer ago than this many days open no case (history).
DEFAULT_CASES_WITHIN_DAYS = 30.0

logger = logging.getLogger("closeloop")

DEFAULT_OPENAPI_PATH = Path("openapi/openapi.json")
_SIGTERM_EXIT = 128 + signal.SIGTERM


@dataclass(frozen=True)
class DatabaseTarget:
    url: str
    embedded: bool


@contextmanager
def database(settings: Settings) -> Iterator[DatabaseTarget]:
    """The configured database, or the embedded one, held for as long as the block runs."""
    if settings.database_url:
        yield DatabaseTarget(settings.database_url, embedded=False)
        return
    from app.core.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(settings.data_dir)
    url = server.acquire()
    try:
        yield DatabaseTarget(url, embedded=True)
    finally:
        server.release()


def _exit_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so `finally` blocks (stopping the embedded server) run."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(_SIGTERM_EXIT)

    signal.signal(signal.SIGTERM, handler)


@contextmanager
def metrics_directory() -> Iterator[None]:
    """Where the worker processes of `serve --workers N` keep their counters for /metrics to
    add up: PROMETHEUS_MULTIPROC_DIR if set (it must then be emptied between runs), else a
    fresh directory of our own, removed afterwards."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="closeloop-metrics-") as directory:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        try:
            yield
        finally:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]


def serve(settings: Settings, *, host: str, port: int, workers: int) -> None:
    import uvicorn

    from app.core.migrations import upgrade

    with database(settings) as target:
        if target.embedded or settings.migrate_on_start:
            upgrade(target.url)
        # Worker processes (and anything they start) read the same database from here.
        os.environ["FEEDBACK_DATABASE_URL"] = target.url
        settings = settings.model_copy(update={"database_url": target.url})
        options = {
            "host": host,
            "port": port,
            "log_config": logging_config(settings.log_level),
            "access_log": False,
            "server_header": False,
            # The client address is ours to work out (FEEDBACK_TRUSTED_PROXIES), not uvicorn's:
            # by default it would believe X-Forwarded-For from any local peer.
            "proxy_headers": False,
            # On SIGTERM: stop accepting, let requests in flight finish for this long.
            "timeout_graceful_shutdown": settings.shutdown_grace_seconds or None,
        }
        logger.info("serving on http://%s:%d", host, port)
        try:
            if workers > 1:
                with metrics_directory():
                    uvicorn.run("app.main:create_app", factory=True, workers=workers, **options)  # type: ignore[arg-type]
            else:
                from app.main import create_app

                uvicorn.Server(uvicorn.Config(create_app(settings), **options)).run()  # type: ignore[arg-type]
        except KeyboardInterrupt:
            pass  # uvicorn stopped in order on Ctrl-C, then raised it again: a clean stop
        except SystemExit as stop:
            if stop.code != _SIGTERM_EXIT:  # a real failure (a port in use, say)
                raise
    logger.info("stopped")


def worker(settings: Settings) -> None:
    """The background work alone (SLA monitor, webhook dispatcher), without the API."""
    from app.core.db import Database
    from app.core.migrations import upgrade
    from app.worker import finish_within, run_background

    async def run(url: str) -> None:
        database = await Database.connect(url, **settings.database_options())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        background = asyncio.create_task(run_background(database, settings, stop))
        stopping = asyncio.create_task(stop.wait())
        try:
            # Until told to stop (or until the work fails: finish_within raises its error).
            await asyncio.wait({background, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            await finish_within(settings.shutdown_grace_seconds, [background])
        finally:
            await database.close()

    with database(settings) as target:
        if target.embedded or settings.migrate_on_start:
            upgrade(target.url)
        logger.info("worker running")
        asyncio.run(run(target.url))
    logger.info("stopped")


def migrate(settings: Settings) -> None:
    from app.core.migrations import head_revision, upgrade

    with database(settings) as target:
        upgrade(target.url)
    print(f"database is at the latest migration ({head_revision()})")


async def _create_api_key(
    settings: Settings,
    url: str,
    name: str,
    scopes: list[str],
    sources: list[str] | None,
    origins: list[str] | None,
    publishable: bool,
) -> str:
    from pydantic import ValidationError

    from app.core.api_keys import ApiKeyCreate, create_api_key
    from app.core.db import Database

    try:
        data = ApiKeyCreate.model_validate(
            {
                "name": name,
                "scopes": scopes,
                "allowed_sources": sources,
                "allowed_origins": origins,
                "publishable": publishable,
            }
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise SystemExit(f"closeloop create-api-key: {problems}") from None
    # The settings' options (FEEDBACK_DATABASE_POOLER among them), with a pool for one session.
    db = await Database.connect(url, **(settings.database_options() | {"pool_size": 2}))
    try:
        async with db.sessionmaker() as session:
            row, key = await create_api_key(session, data)
            await session.commit()
    finally:
        await db.close()
    print(f"created API key {row.id} ({row.name}) with scopes {', '.join(row.scopes)}")
    print("store it now: it is shown this once")
    return key


def create_key(settings: Settings, args: argparse.Namespace) -> None:
    from app.core.migrations import upgrade

    with database(settings) as target:
        if target.embedded:
            upgrade(target.url)
        key = asyncio.run(
            _create_api_key(
                settings,
                target.url,
                args.name,
                args.scope,
                args.allowed_source,
                args.allowed_origin,
                args.publishable,
            )
        )
    print(key)


def export_openapi(settings: Settings, output: str) -> None:
    from app.main import create_app

    document = json.dumps(create_app(settings).openapi(), indent=2, ensure_ascii=False) + "\n"
    if output == "-":
        sys.stdout.write(document)
        return
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    print(f"wrote {path}")


def _days(text: str) -> float:
    """--cases-within: a number of days; NaN is none (a window past year 1 is every row)."""
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a number of days") from None
    if math.isnan(days):
        raise argparse.ArgumentTypeError(f"`{text}` is not a number of days")
    return days


def _source(text: str) -> str:
    from app.connectors.imports import source_problem

    problem = source_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"`{text}` {problem}")
    return text


def import_file(settings: Settings, args: argparse.Namespace) -> None:
    from app.connectors.import_cli import import_command
    from app.core.migrations import upgrade

    with database(settings) as target:
        if target.embedded:
            upgrade(target.url)
        status = import_command(
            target.url,
            settings,
            file=args.file,
            source=args.source,
            mapping=args.mapping,
            connector=args.connector,
            cases_within_days=None if args.cases_within < 0 else args.cases_within,
        )
    if status:
        raise SystemExit(status)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="closeloop", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve_cmd = commands.add_parser("serve", help="run the HTTP service")
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=8000)
    serve_cmd.add_argument("--workers", type=int, default=1, help="processes (default 1)")

    commands.add_parser("worker", help="run the background work (SLA monitor, webhooks) alone")
    commands.add_parser("migrate", help="apply pending database migrations")

    key_cmd = commands.add_parser("create-api-key", help="create an API key and print it")
    key_cmd.add_argument("--name", required=True)
    key_cmd.add_argument(
        "--scope",
        action="append",
        required=True,
        help="feedback:write, feedback:read, cases:read, cases:write, reports:read or admin; "
        "repeat for several",
    )
    key_cmd.add_argument("--allowed-source", action="append", help="repeat for several")
    key_cmd.add_argument("--allowed-origin", action="append", help="repeat for several")
    key_cmd.add_argument(
        "--publishable",
        action="store_true",
        help="a key for a web page or app in strangers' hands (feedback:write only)",
    )

    import_cmd = commands.add_parser(
        "import", help="load a survey export (.csv or .jsonl) through the batch ingest"
    )
    import_cmd.add_argument("file", help="a .csv (with a header row) or .jsonl file")
    import_cmd.add_argument(
        "--source", type=_source, help="the source the rows are stored under (a slug)"
    )
    import_cmd.add_argument("--mapping", help="a JSON file: a connector mapping for the columns")
    import_cmd.add_argument("--connector", help="a connector's id: its source, tool and mapping")
    import_cmd.add_argument(
        "--cases-within",
        type=_days,
        default=DEFAULT_CASES_WITHIN_DAYS,
        metavar="DAYS",
        help="negative rows submitted within the last DAYS days (a row without a time: now) "
        "open or join cases; older ones are stored and counted in reports, on no case "
        f"(default {DEFAULT_CASES_WITHIN_DAYS:g}; -1, or any number reaching before year 1, "
        "such as inf: every one does)",
    )

    export_cmd = commands.add_parser("export-openapi", help="write the OpenAPI document")
    export_cmd.add_argument("--output", default=str(DEFAULT_OPENAPI_PATH), help="a path, or -")
    return parser


def _settings() -> Settings:
    """The settings from the environment, or the command's end with each bad one named by its
    variable (not a traceback; the value is not repeated: it may be a secret)."""
    try:
        return get_settings()
    except ValidationError as exc:
        lines = [
            f"  FEEDBACK_{str(error['loc'][0]).upper()}: {error['msg']}"
            if error["loc"]
            else f"  {error['msg']}"
            for error in exc.errors()
        ]
        raise SystemExit("closeloop: invalid settings:\n" + "\n".join(lines)) from None


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = _settings()
    logging.config.dictConfig(logging_config(settings.log_level))
    _exit_on_sigterm()
    if args.command == "serve":
        serve(settings, host=args.host, port=args.port, workers=args.workers)
    elif args.command == "worker":
        worker(settings)
    elif args.command == "migrate":
        migrate(settings)
    elif args.command == "create-api-key":
        create_key(settings, args)
    elif args.command == "import":
        import_file(settings, args)
    elif args.command == "export-openapi":
        export_openapi(settings, args.output)


if __name__ == "__main__":
    main()
