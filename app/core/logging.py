"""Structured logs: one JSON object per line, with the request id of the request being served.

Personal data stays out: the access log has method, route template, status and duration only;
the feedback code never logs bodies; SQLAlchemy never logs statements, rows or parameters;
and an exception's message is left out wherever it may quote a value: database errors (their
messages and details quote rows and arguments), anything they were raised from, and pydantic
validation errors (which quote their input). Tracebacks, types and SQL states stay.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import StatementError

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Record attributes that are not extras (uvicorn's color_message is a duplicate of the message).
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


def logged_path(scope: Mapping[str, Any]) -> str:
    """The path as logs show it: its route's template (`/v1/customers/{key}`), so no customer
    key, e-mail or id is logged; a path no route took keeps only the segments some route
    spells out, the others masked (`/v1/customers/{}/exports`  →  `/v1/customers/{}/{}`)."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if isinstance(template, str):
        return template
    literals = _route_literals(scope)
    return "/".join(
        part if not part or part in literals else "{}" for part in scope["path"].split("/")
    )


def _route_literals(scope: Mapping[str, Any]) -> set[str]:
    """Every fixed segment of the app's routes, from its OpenAPI document (built once; the
    routes themselves sit inside included routers)."""
    app = scope.get("app")
    openapi = getattr(app, "openapi", None)
    paths: list[str] = list(openapi().get("paths", {})) if callable(openapi) else []
    paths += [
        path
        for route in getattr(app, "routes", ())
        if isinstance(path := getattr(route, "path", None), str)
    ]
    return {part for path in paths for part in path.split("/") if "{" not in part}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            # Which process: `serve --workers N` writes N processes' lines to one stream.
            "pid": record.process,
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)

    def formatException(
        self,
        ei: tuple[type[BaseException], BaseException, TracebackType | None]
        | tuple[None, None, None],
    ) -> str:
        if ei[1] is None:
            return ""
        return "".join(_exception_lines(ei[1], scrub=False, seen=set()))


_DRIVER_MODULES = ("asyncpg", "sqlalchemy.dialects", "sqlalchemy.connectors")
_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def _exception_lines(exc: BaseException, *, scrub: bool, seen: set[int]) -> list[str]:
    """As traceback.format_exception, with the messages of database errors (and of whatever
    they were raised from) reduced to what names no value."""
    seen.add(id(exc))
    scrub = scrub or _is_database_error(exc)
    lines: list[str] = []
    if exc.__cause__ is not None and id(exc.__cause__) not in seen:
        lines += [*_exception_lines(exc.__cause__, scrub=scrub, seen=seen), _CAUSE]
    elif (
        exc.__context__ is not None
        and not exc.__suppress_context__
        and id(exc.__context__) not in seen
    ):
        lines += [*_exception_lines(exc.__context__, scrub=scrub, seen=seen), _CONTEXT]
    if exc.__traceback__ is not None:
        lines += ["Traceback (most recent call last):\n", *traceback.format_tb(exc.__traceback__)]
    kind = type(exc)
    lines.append(f"{kind.__module__}.{kind.__qualname__}: {_message(exc, scrub=scrub)}\n")
    return lines


def _is_database_error(exc: BaseException) -> bool:
    return isinstance(exc, StatementError) or type(exc).__module__.startswith(_DRIVER_MODULES)


def _message(exc: BaseException, *, scrub: bool) -> str:
    if isinstance(exc, ValidationError):
        places = ", ".join(
            f"{'.'.join(map(str, e['loc']))} ({e['type']})"
            for e in exc.errors(include_input=False, include_url=False)
        )
        return f"{exc.error_count()} validation error(s) for {exc.title}: {places}"
    if not scrub:
        return str(exc)
    if isinstance(exc, StatementError):
        return f"[SQL: {exc.statement}]" if exc.statement else "(no statement)"
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate:  # a PostgreSQL error: its state and the names of what it is about
        names = [
            f"{attribute} {value}"
            for attribute in ("schema_name", "table_name", "column_name", "constraint_name")
            if (value := getattr(exc, attribute, None))
        ]
        return f"sqlstate {sqlstate}" + (f" ({', '.join(names)})" if names else "")
    message = str(exc)
    if type(exc).__module__.startswith("asyncpg") and not message.startswith("invalid input"):
        # asyncpg's own state errors ("another operation is in progress") quote no values.
        return message
    return "(message withheld: it may quote a value)"


def logging_config(level: str) -> dict[str, Any]:
    """A dictConfig for the service and uvicorn alike (uvicorn's access log is replaced by ours)."""
    http_clients = "DEBUG" if level.upper() == "DEBUG" else "WARNING"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"level": level.upper()},
            "uvicorn.access": {"level": "WARNING", "propagate": False},
            # Migrations run quietly; `closeloop migrate` says what it did.
            "alembic": {"level": "WARNING"},
            # At debug SQLAlchemy would log every row it reads: customers' data.
            "sqlalchemy": {"level": "WARNING"},
            # httpx logs each request's whole URL at info, and a webhook URL may carry a token
            # in its query: only an operator who asks for debug gets those lines.
            "httpx": {"level": http_clients},
            "httpcore": {"level": http_clients},
        },
    }
