"""Ingest, cases, the SLA monitor, job leases and the commands through a real PgBouncer in
transaction mode (FEEDBACK_DATABASE_POOLER=pgbouncer), where every transaction may run on another
server connection. Skipped, saying so, when pgbouncer is not installed."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from app.cases.sla import run_pass
from app.core.config import Settings
from app.core.db import Database
from app.core.embedded import EmbeddedPostgres
from app.core.jobs import Lease
from app.main import create_app
from tests.builders import feedback_body, make_api_key
from tests.pgbouncer import MISSING, PGBOUNCER, pgbouncer
from tests.processes import CLOSELOOP, connected, environment, own_database

pytestmark = pytest.mark.skipif(PGBOUNCER is None, reason=MISSING)


async def test_ingest_and_case_flows_through_pgbouncer_in_transaction_mode(
    pg_server: EmbeddedPostgres, tmp_path: Path
) -> None:
    async with own_database(pg_server) as url:
        with pgbouncer(pg_server, url, tmp_path / "pgbouncer.log") as bouncer_url:
            settings = Settings(
                database_url=bouncer_url,
                database_pooler="pgbouncer",
                ingest_rate_limit_per_minute=0,
                access_log=False,
            )
            database = await Database.connect(bouncer_url, **settings.database_options())
            try:
                await _flows(database, settings)
            finally:
                await database.close()
        async with connected(url) as direct, direct.raw() as conn:
            counts = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM feedback) AS feedback, "
                "(SELECT count(*) FROM feedback_case) AS cases, "
                "(SELECT count(*) FROM feedback_case WHERE status = 'closed') AS closed"
            )
    assert counts is not None
    assert dict(counts) == {"feedback": 140, "cases": 90, "closed": 10}


async def _flows(database: Database, settings: Settings) -> None:
    key = await make_api_key(database, "admin", name="admin")
    app = create_app(settings, database)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {key}"},
    ) as client:
        team = {"key": "support", "name": "S", "first_response_minutes": 1, "resolution_minutes": 5}
        assert (await client.post("/v1/teams", json=team)).status_code == 201
        # Forty at once, on more client connections than PgBouncer has server connections.
        singles = await asyncio.gather(
            *(
                client.post(
                    "/v1/feedback",
                    json=feedback_body(external_id=f"s-{i}", customer={"external_id": f"c-{i}"}),
                )
                for i in range(40)
            )
        )
        assert [r.status_code for r in singles] == [201] * 40
        again = await client.post(
            "/v1/feedback", json=feedback_body(external_id="s-0", customer={"external_id": "c-0"})
        )
        assert again.status_code == 200
        items = [
            feedback_body(external_id=f"b-{i}", customer={"external_id": f"b-{i}"}, score=i % 2 * 9)
            for i in range(100)
        ]
        batch = await client.post("/v1/feedback/batch", json={"items": items})
        assert [r["status"] for r in batch.json()["results"]] == ["created"] * 100
        cases = (await client.get("/v1/cases?limit=100")).json()["items"]
        assert len(cases) == 90  # 40 singles and the 50 detractors of the batch
        for case in cases[:10]:
            resolved = await client.post(
                f"/v1/cases/{case['id']}/resolve",
                json={"code": "fixed", "notify_customer": False},
                headers={"If-Match": f'"{case["version"]}"'},
            )
            assert resolved.status_code == 200, resolved.text
    result = await run_pass(database.sessionmaker, autoclose_after=timedelta(0), now=None)
    assert result.closed == 10
    first, second = Lease(database, "test_job"), Lease(database, "test_job")
    assert await first.take()
    assert not await second.take()
    await first.release()
    assert await second.take()


def _closeloop(*arguments: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [CLOSELOOP, *arguments], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"closeloop {arguments[0]}: {done.stderr}"
    return done


async def test_migrate_create_api_key_and_import_run_through_pgbouncer(
    pg_server: EmbeddedPostgres, tmp_path: Path
) -> None:
    """The commands connect as the service does behind PgBouncer: migrate twice (the second
    run's statements met the first's prepared `__asyncpg_stmt_1__`), then create-api-key and
    import (they sent the statement timeout as a startup parameter, which PgBouncer refuses)."""
    name = f"closeloop_bouncer_cli_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = pg_server.create_database(name, drop_first=True)
    csv = tmp_path / "tiny.csv"
    csv.write_text("external_id,channel,metric,score\nt-1,web,nps,9\nt-2,web,nps,10\n")
    try:
        with pgbouncer(pg_server, url, tmp_path / "pgbouncer.log") as bouncer_url:
            env = environment(bouncer_url, database_pooler="pgbouncer")
            for _ in range(2):
                migrated = await asyncio.to_thread(_closeloop, "migrate", env=env)
                assert "database is at the latest migration" in migrated.stdout
            created = await asyncio.to_thread(
                _closeloop, "create-api-key", "--name", "bouncer", "--scope", "admin", env=env
            )
            assert "created API key" in created.stdout
            imported = await asyncio.to_thread(
                _closeloop, "import", str(csv), "--source", "bouncer-import", env=env
            )
            assert "created 2, replayed 0, updated 0, failed 0" in imported.stderr
        async with connected(url) as direct, direct.raw() as conn:
            counts = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM api_key WHERE name = 'bouncer') AS keys, "
                "(SELECT count(*) FROM feedback WHERE source = 'bouncer-import') AS feedback"
            )
        assert counts is not None
        assert dict(counts) == {"keys": 1, "feedback": 2}
    finally:
        pg_server.drop_database(name)
