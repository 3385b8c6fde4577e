"""Bulk import throughput: `closeloop import` on a realistic survey export.

    .venv/bin/python -m bench.import [--rows 100000] [--cases-within DAYS]

What runs. A CSV export like a survey tool's (a response id, an NPS answer with a share of
detractors, a free-text comment in several languages on most rows, an e-mail on most, a
submitted time without a zone, plan and country columns) is written to a temporary folder with
a mapping file. One embedded PostgreSQL (durable settings) under .closeloop-bench/ gets a fresh
database, migrated. The import then runs in this process exactly as `closeloop import FILE
--source S --mapping M` does (the same function, without the progress bar), twice: the first
run stores every row (and, by default, opens the detractors' cases, as if the export were
recent; `--cases-within 30` measures the command's own default, under which these rows of 2024
open none), the second replays them all (the rerun a user makes after a crash). rows/s is rows
over wall time of each run.

The target is 20,000 rows/s or more on the first run. Exit status: 0 for PASS, 1 for FAIL.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.connectors.imports import Counts
from bench._postgres import embedded_postgres, fresh_database
from bench.common import run_cleanly

TARGET_ROWS_PER_SECOND = 20_000
DATABASE = "closeloop_bench_import"
COMMENTS = [
    "Delivery was late again and nobody answered my e-mail",
    "Great service, the courier was friendly",
    "O app trava no pagamento",
    "La entrega llegó rota y nadie responde",
    "客服态度很差，等了一个小时",
    "Works fine",
    "",
]
MAPPING = {
    "metric": "nps",
    "field": "How likely are you to recommend us?",
    "comment": "What is the main reason for your score?",
    "email": "Email",
    "customer_id": "Customer ID",
    "submitted_at": "Submitted At",
    "response_id": "Response ID",
    "attributes": ["Plan", "Country"],
    "channel": "email",
}


def write_export(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    header = [
        "Response ID",
        "How likely are you to recommend us?",
        "What is the main reason for your score?",
        "Email",
        "Customer ID",
        "Plan",
        "Country",
        "Submitted At",
    ]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for n in range(rows):
            score = rng.randint(0, 6) if rng.random() < 0.25 else rng.randint(7, 10)
            customer = rng.randint(1, rows // 3)
            writer.writerow(
                [
                    f"resp-{n:07d}",
                    str(score),
                    rng.choice(COMMENTS),
                    f"customer{customer}@example.com" if rng.random() < 0.8 else "",
                    f"cus_{customer}",
                    rng.choice(["free", "pro", "enterprise"]),
                    rng.choice(["BR", "ES", "CN", "US", "TW"]),
                    f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} "
                    f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00",
                ]
            )


async def timed_import(
    url: str, csv_path: Path, mapping: bytes, cases_within: float
) -> list[tuple[float, Counts]]:
    from app.connectors.imports import ImportRun, import_file
    from app.connectors.mapping import ConnectorMapping
    from app.core.config import Settings
    from app.core.crypto import secret_box
    from app.core.db import Database
    from app.feedback.identity import IdentitySecrets

    settings = Settings(database_url=url)
    database = await Database.connect(url, pool_size=4)
    results: list[tuple[float, Counts]] = []
    try:
        for _ in range(2):
            run = ImportRun(
                database, settings, "legacy-nps", ConnectorMapping.model_validate_json(mapping)
            )
            if cases_within >= 0:
                run.cases_since = datetime.now(UTC) - timedelta(days=cases_within)
            started = time.perf_counter()
            counts, _failures = await import_file(csv_path, run, IdentitySecrets(secret_box(None)))
            results.append((time.perf_counter() - started, counts))
    finally:
        await database.close()
    return results


def run(stack: ExitStack, args: argparse.Namespace) -> int:
    from app.core.migrations import upgrade

    folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
    csv_path, mapping_path = folder / "export.csv", folder / "mapping.json"
    write_export(csv_path, args.rows)
    mapping_path.write_text(json.dumps(MAPPING))
    postgres = stack.enter_context(embedded_postgres())
    url = stack.enter_context(fresh_database(postgres, DATABASE))
    upgrade(url)
    (first, counts), (second, again) = asyncio.run(
        timed_import(url, csv_path, mapping_path.read_bytes(), args.cases_within)
    )
    first_rate, second_rate = args.rows / first, args.rows / second
    print(f"rows: {args.rows:,} ({csv_path.stat().st_size / 1e6:.1f} MB CSV)")
    print(f"first run:  {first:6.2f} s  {first_rate:10,.0f} rows/s  {counts}")
    print(f"second run: {second:6.2f} s  {second_rate:10,.0f} rows/s  {again}")
    verdict = first_rate >= TARGET_ROWS_PER_SECOND
    print(f"target {TARGET_ROWS_PER_SECOND:,} rows/s: {'PASS' if verdict else 'FAIL'}")
    return 0 if verdict else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--cases-within",
        type=float,
        default=-1,
        metavar="DAYS",
        help="as closeloop import's option; the export's rows are of 2024, so 30 (the command's "
        "default) opens no case. Default -1: every complaint opens or joins its case, the "
        "heavier path",
    )
    args = parser.parse_args(argv)
    return run_cleanly(lambda stack: run(stack, args))


if __name__ == "__main__":
    sys.exit(main())
