"""openapi/openapi.json is the contract: exactly what the app serves."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


async def test_committed_contract_matches_the_app(client: httpx.AsyncClient) -> None:
    served = (await client.get("/openapi.json")).json()
    committed = json.loads((ROOT / "openapi" / "openapi.json").read_text(encoding="utf-8"))
    assert served == committed, (
        "openapi/openapi.json is stale: run `.venv/bin/closeloop export-openapi`"
    )


# The one /v1/ operation anyone may call: a survey tool checking its webhook's URL (it answers
# 200 to any tool's URL, so it tells nothing; app/connectors/router.py).
_UNAUTHENTICATED = {("head", "/v1/connectors/{tool}/{source}")}


async def test_every_operation_has_a_stable_id_and_lists_its_errors(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    ids = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            ids.append(operation["operationId"])
            assert "_" in operation["operationId"] or operation["operationId"].isalpha()
            errors = [s for s in operation["responses"] if s[0] in "45"]
            if path.startswith("/v1/") and (method, path) not in _UNAUTHENTICATED:
                assert "401" in errors, f"{method} {path} does not list 401"
            for status in errors:
                content = operation["responses"][status]["content"]
                if path.startswith("/f/") and status not in ("400", "413", "415", "422"):
                    # The customer's follow-up page answers its refusals as pages (what the
                    # guards in front of every route refuse stays problem+json).
                    assert list(content) == ["text/html"], (method, path, status)
                    continue
                expected = ["application/problem+json"]
                if path.startswith("/f/") and method == "post" and status == "422":
                    expected = ["text/html"]  # the question again, with what to fix
                assert list(content) == expected, (method, path, status)
    assert len(ids) == len(set(ids))
    assert "create_feedback" in ids
