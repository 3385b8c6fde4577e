"""The widget file as served: small, plain, self-contained (its behaviour is proved in a real
browser, tests/web/test_browser_widget.py)."""

from __future__ import annotations

import gzip
import json
import re

import httpx

from app.web.i18n import WIDGET_TEXT

WIDGET_BUDGET = 10 * 1024


async def test_the_widget_is_under_10_kib_gzipped_and_served_so(client: httpx.AsyncClient) -> None:
    plain = await client.get("/widget.js", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200
    assert plain.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "content-encoding" not in plain.headers
    size = len(gzip.compress(plain.content, compresslevel=9))
    assert size < WIDGET_BUDGET, f"widget.js is {size} bytes gzipped"

    compressed = await client.get("/widget.js", headers={"Accept-Encoding": "gzip, br"})
    assert compressed.headers["content-encoding"] == "gzip"
    assert compressed.headers["vary"] == "Accept-Encoding"
    assert compressed.content == plain.content  # httpx undoes the gzip
    assert int(compressed.headers["content-length"]) < WIDGET_BUDGET
    assert compressed.headers["cross-origin-resource-policy"] == "cross-origin"
    assert compressed.headers["x-content-type-options"] == "nosniff"


async def test_the_widget_loads_nothing_and_names_no_other_host(client: httpx.AsyncClient) -> None:
    source = (await client.get("/widget.js")).text
    # Its only request is to the service it came from, found from its own address.
    assert re.findall(r"https?://[^\s\"']+", source) == ["https://HOST/widget.js"]
    for loader in ("import(", "importScripts", "eval(", "new Function", "document.write"):
        assert loader not in source
    assert source.lstrip().startswith("/*!")
    assert "(function () {" in source
    assert source.rstrip().endswith("})();")


async def test_the_widget_is_served_with_its_words_in_every_language(
    client: httpx.AsyncClient,
) -> None:
    source = (await client.get("/widget.js")).text
    assert "__WIDGET_TEXT__" not in source
    for language, words in WIDGET_TEXT.items():
        assert f'"{language}":' in source
        assert all(json.dumps(text, ensure_ascii=False) in source for text in words.values())


async def test_an_asset_of_another_name_is_not_found(client: httpx.AsyncClient) -> None:
    response = await client.get("/web/followup.py")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
