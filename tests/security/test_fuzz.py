"""schemathesis against a real `closeloop serve`, bounded (issue 9, point 6).

Every phase (examples, coverage, fuzzing, stateful), every check of schemathesis.toml: any 5xx,
any status, header, media type or body the contract does not describe fails the test. The run
has a time budget of FUZZ_SECONDS and is stopped (and fails) if it outlives its hard limit;
`make fuzz` runs the same for as long as you like.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx

from app.core.embedded import EmbeddedPostgres
from tests.builders import make_api_key
from tests.processes import connected, own_database, ready, serve

ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
FUZZ_SECONDS = 60
HARD_LIMIT = 110  # the whole run, its start included, stays within the 120 s


async def test_schemathesis_finds_nothing(pg_server: EmbeddedPostgres, tmp_path: Path) -> None:
    quiet = {"dispatcher_in_process": "false", "rate_limit_per_minute": "0"}
    async with own_database(pg_server) as url, connected(url) as database:
        key = await make_api_key(database, "admin", name="fuzz")
        with serve(url, tmp_path / "serve.log", **quiet) as served:
            async with httpx.AsyncClient() as client:
                await ready(client, served)
            command = [
                SCHEMATHESIS,
                "--config-file",
                str(ROOT / "schemathesis.toml"),
                "--no-color",
                "run",
                f"{served.base_url}/openapi.json",
                "--header",
                f"Authorization: Bearer {key}",
                "--max-time",
                str(FUZZ_SECONDS),
                "--workers",
                "1",
                "--generation-database",
                ":memory:",
            ]
            run = await asyncio.to_thread(
                subprocess.run,
                command,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=HARD_LIMIT,
                check=False,
            )
    report = run.stdout[-6000:] + run.stderr[-2000:]
    assert run.returncode == 0, report
    assert "passed" in run.stdout, report
