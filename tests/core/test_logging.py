"""What the logs say: route templates rather than paths, and errors without the values in them."""

from __future__ import annotations

import json
import logging
import os
import sys

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, EmailStr, ValidationError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.core.config import Settings
from app.core.db import BoundDatabase, Database
from app.core.logging import JsonFormatter, logging_config
from app.main import create_app
from tests.builders import auth, make_api_key

SECRET = "ana.souza@example.com"


def _logged(error: BaseException) -> str:
    try:
        raise error
    except BaseException:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    return JsonFormatter().format(record)


async def test_a_database_error_is_logged_without_the_row_it_quotes(committed: Database) -> None:
    async with committed.raw() as conn:
        await conn.execute("CREATE TEMP TABLE person (email text UNIQUE)")
        await conn.execute("INSERT INTO person VALUES ($1)", SECRET)
        with pytest.raises(asyncpg.UniqueViolationError) as raised:
            await conn.execute("INSERT INTO person VALUES ($1)", SECRET)
    assert SECRET in str(raised.value)  # asyncpg's DETAIL quotes the row
    logged = json.loads(_logged(raised.value))
    assert SECRET not in logged["exception"]
    assert "UniqueViolationError: sqlstate 23505" in logged["exception"]
    assert "person_email_key" in logged["exception"]


async def test_an_argument_asyncpg_refuses_is_not_quoted(committed: Database) -> None:
    async with committed.raw() as conn:
        with pytest.raises(asyncpg.DataError) as raised:
            await conn.fetchval("SELECT $1::uuid", SECRET)
    assert SECRET in str(raised.value)
    logged = _logged(raised.value)
    assert SECRET not in logged
    assert "DataError" in logged


async def test_an_orm_error_names_its_sql_and_not_its_parameters(committed: Database) -> None:
    async with committed.sessionmaker() as session:
        with pytest.raises(DBAPIError) as raised:
            await session.execute(text("SELECT CAST(:email AS uuid)"), {"email": SECRET})
    logged = _logged(raised.value)
    assert SECRET not in logged
    assert "[SQL: SELECT CAST(" in logged


def test_a_validation_error_is_logged_without_its_input() -> None:
    class Customer(BaseModel):
        email: EmailStr

    with pytest.raises(ValidationError) as raised:
        Customer.model_validate({"email": f"{SECRET} and more"})
    logged = _logged(raised.value)
    assert SECRET not in logged
    assert "email (value_error)" in logged


def test_other_errors_keep_their_message() -> None:
    assert "the queue is empty" in _logged(RuntimeError("the queue is empty"))


def test_each_line_says_its_process() -> None:
    """`serve --workers N` writes N processes' lines to one stream."""
    assert json.loads(_logged(RuntimeError("x")))["pid"] == os.getpid()


@pytest.fixture
def logging_app(settings: Settings, database: BoundDatabase) -> FastAPI:
    return create_app(settings.model_copy(update={"access_log": True}), database)


async def test_the_access_log_names_route_templates_and_masks_unknown_paths(
    logging_app: FastAPI, database: BoundDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    key = await make_api_key(database, "admin")
    transport = httpx.ASGITransport(app=logging_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        with caplog.at_level(logging.INFO, logger="closeloop.access"):
            await client.get(f"/v1/customers/{SECRET}", headers=auth(key))
            await client.get(f"/v1/customers/{SECRET}/export/all", headers=auth(key))
            await client.get(f"/{SECRET}")
    paths = [(r.path, r.status) for r in caplog.records if r.name == "closeloop.access"]  # type: ignore[attr-defined]
    assert paths == [
        ("/v1/customers/{key}", 404),
        ("/v1/customers/{}/export/{}", 404),
        ("/{}", 404),
    ]


def test_http_clients_log_no_urls_at_info() -> None:
    """httpx logs each request's URL at info, and a receiver's URL may carry its token: at the
    service's info level (and above) those lines stay out; asked for debug, they come."""
    for level, expected in (("info", "WARNING"), ("warning", "WARNING"), ("debug", "DEBUG")):
        loggers = logging_config(level)["loggers"]
        assert loggers["httpx"]["level"] == loggers["httpcore"]["level"] == expected
