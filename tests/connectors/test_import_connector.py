"""`closeloop import --connector ID`: a tool's export stored as that connector stores, so the
tool's later webhooks update the imported items rather than adding others."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
from rich.console import Console

from app.connectors.import_cli import run_import
from app.core.config import Settings
from tests.connectors.deliveries import DELIGHTED_TOKEN, create_connector, delighted_event, raw


async def test_imported_rows_are_the_items_the_webhooks_update(
    committed_client: httpx.AsyncClient, database_url: str, settings: Settings, tmp_path: Path
) -> None:
    """The export's columns are not the webhook's fields: the file has a mapping of its own
    (`--mapping`), the connector gives the tool, the source and who stores."""
    connector = await create_connector(
        committed_client, "delighted", "nps-email", secret=DELIGHTED_TOKEN
    )
    export = tmp_path / "delighted.csv"
    export.write_text("Response,Score,Comment\n5435,2,\n")
    mapping = tmp_path / "export-mapping.json"
    mapping.write_text(
        '{"response_id": "Response", "metric": "nps", "field": "Score", "comment": "Comment"}'
    )
    counts = await run_import(
        database_url,
        settings,
        path=export,
        source=None,
        mapping_path=str(mapping),
        connector_id=connector["id"],
        console=Console(file=io.StringIO()),
        cases_within_days=None,
    )
    assert (counts.created, counts.failed) == (1, 0)
    [imported] = (
        await committed_client.get("/v1/feedback", params={"source": "nps-email"})
    ).json()["items"]
    assert imported["external_id"] == "delighted:5435"

    later = delighted_event("5435", kind="survey_response.updated", score=2, comment="Too slow")
    answer = await committed_client.post(
        "/v1/connectors/delighted/nps-email",
        content=raw(later),
        headers={"Content-Type": "application/json", "X-Closeloop-Token": DELIGHTED_TOKEN},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "updated"
    assert answer.json()["feedback"]["id"] == imported["id"]
    assert answer.json()["feedback"]["comment"] == "Too slow"
