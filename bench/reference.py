"""The bare reference the ingest benchmark measures the service against.

The least a FastAPI service can do to store a piece of feedback: parse the body into a plain
pydantic model (the same fields as `POST /v1/feedback`, plain types, no custom validators), run
one raw asyncpg INSERT of it from a pool as large as the service's default (20), answer 201 with
the new id. No authentication (it does not check the bearer key the service checks), no
middleware, no logging. It runs under uvicorn with the options `closeloop serve` uses: one
process, uvloop and httptools when installed, no access log, no server header.

    python -m bench.reference --port 8001 --dsn postgresql://postgres@/db?host=/socket/dir

Its table has the service's columns and a primary key, nothing else; it is created at start when
missing.
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import uvicorn
from fastapi import FastAPI, Request, status
from pydantic import BaseModel, Field

from bench.common import POOL_SIZE

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS reference_feedback (
    id uuid PRIMARY KEY,
    source text NOT NULL,
    channel text NOT NULL,
    external_id text,
    customer_external_id text,
    customer_email text,
    customer_phone text,
    customer_name text,
    customer_locale text,
    contact_consent boolean NOT NULL DEFAULT true,
    metric text,
    score smallint,
    comment text,
    tags text[] NOT NULL DEFAULT '{}',
    touchpoint text,
    journey_stage text,
    attributes jsonb NOT NULL DEFAULT '{}',
    submitted_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL
)
"""

INSERT = """
INSERT INTO reference_feedback (
    id, source, channel, external_id, customer_external_id, customer_email, customer_phone,
    customer_name, customer_locale, contact_consent, metric, score, comment, tags, touchpoint,
    journey_stage, attributes, submitted_at, received_at
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
"""


class Customer(BaseModel):
    external_id: str | None = None
    email: str | None = None
    phone: str | None = None
    name: str | None = None
    locale: str | None = None
    contact_consent: bool = True


class Feedback(BaseModel):
    source: str
    channel: str
    external_id: str | None = None
    customer: Customer | None = None
    metric: str | None = None
    score: int | None = None
    comment: str | None = None
    tags: list[str] = Field(default_factory=list)
    touchpoint: str | None = None
    journey_stage: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    submitted_at: datetime | None = None


class Stored(BaseModel):
    id: uuid.UUID
    received_at: datetime


def create_app(dsn: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(dsn, min_size=0, max_size=POOL_SIZE)
        try:
            await pool.execute(CREATE_TABLE)
            app.state.pool = pool
            yield
        finally:
            await pool.close()

    app = FastAPI(title="Ingest reference", lifespan=lifespan)

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/feedback", status_code=status.HTTP_201_CREATED, response_model=Stored)
    async def create_feedback(payload: Feedback, request: Request) -> Stored:
        pool: asyncpg.Pool = request.app.state.pool
        now = datetime.now(UTC)
        stored = Stored(id=uuid.uuid4(), received_at=now)
        customer = payload.customer or Customer()
        await pool.execute(
            INSERT,
            stored.id,
            payload.source,
            payload.channel,
            payload.external_id,
            customer.external_id,
            customer.email,
            customer.phone,
            customer.name,
            customer.locale,
            customer.contact_consent,
            payload.metric,
            payload.score,
            payload.comment,
            payload.tags,
            payload.touchpoint,
            payload.journey_stage,
            json.dumps(payload.attributes),
            payload.submitted_at or now,
            now,
        )
        return stored

    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reference", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True, help="a postgresql:// DSN asyncpg accepts")
    args = parser.parse_args(argv)
    config = uvicorn.Config(
        create_app(args.dsn),
        host=args.host,
        port=args.port,
        access_log=False,
        server_header=False,
        log_level="warning",
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
