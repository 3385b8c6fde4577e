"""The widget in headless Chromium, on a shop's page served from another origin: it posts with the
publishable key from an origin the key allows, is refused from one it does not, works by keyboard
alone, leaves the page's globals and styles alone, and is saved as a screenshot in each language.

The shop's page is strict itself (a Content-Security-Policy without inline styles or scripts),
so the widget is shown to live within what such a page allows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from html import escape
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect
from starlette.types import Receive, Scope, Send

from app.feedback.identity import identity_signature
from app.web.i18n import LANGUAGES
from tests.builders import make_api_key
from tests.web.conftest import DESKTOP, PHONE, Live, bound_socket, screenshot, serving

LOCALES = {"en": "en-US", "zh-Hans": "zh-CN", "zh-Hant": "zh-HK", "pt": "pt-BR", "es": "es-AR"}
HOST_CSS = (
    # A page's careless styles: none of them may reach the widget.
    "* { font-family: serif; color: #c00000; letter-spacing: 2px; }\n"
    "button, input, textarea { all: unset; background: pink; }\n"
    "div, section, form { display: inline; position: static; }\n"
)


@dataclass
class Shop:
    """A shop's site on its own origin: the page at `/` with the widget's tag, `/plain` without
    it, and its stylesheet."""

    api: str
    attributes: dict[str, str] = field(default_factory=dict)
    origin: str = ""

    def page(self, with_widget: bool) -> bytes:
        tag = ""
        if with_widget:
            data = "".join(f' data-{k}="{escape(v)}"' for k, v in self.attributes.items())
            tag = f'<script src="{self.api}/widget.js"{data} async></script>'
        return (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<title>Order placed</title><link rel="stylesheet" href="/shop.css"></head><body>'
            "<h1>Thank you for your order</h1><p>Order A-1009 is on its way.</p>"
            f'<p><a href="/plain">Continue shopping</a></p>{tag}</body></html>'
        ).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/shop.css":
            body, media = HOST_CSS.encode(), b"text/css"
        else:
            body, media = self.page(scope["path"] == "/"), b"text/html; charset=utf-8"
        policy = (
            f"default-src 'none'; script-src {self.api}; connect-src {self.api}; "
            "style-src 'self'; img-src 'self'"
        )
        headers = [(b"content-type", media), (b"content-security-policy", policy.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@asynccontextmanager
async def shop_site(live: Live, **attributes: str) -> AsyncIterator[Shop]:
    shop = Shop(live.url, attributes)
    sock = bound_socket()
    async with serving(shop, sock) as origin:
        shop.origin = origin
        yield shop


@pytest.fixture
def widget_key(live: Live) -> Callable[[str], Awaitable[str]]:
    """A publishable feedback:write key for checkout-web that allows one origin."""

    async def make(origin: str) -> str:
        return await make_api_key(
            live.database,
            "feedback:write",
            name="shop",
            allowed_sources=["checkout-web"],
            allowed_origins=[origin],
        )

    return make


async def stored(live: Live) -> list[dict[str, Any]]:
    response = await live.admin.get("/v1/feedback", params={"source": "checkout-web"})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def errors_of(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


async def test_from_an_allowed_origin_the_widget_posts_and_thanks(
    live: Live, chromium: Browser, widget_key: Callable[[str], Awaitable[str]]
) -> None:
    secret = (await live.admin.post("/v1/sources/checkout-web/identity-secret")).json()["secret"]
    async with shop_site(
        live,
        source="checkout-web",
        metric="nps",
        locale="pt-BR",
        touchpoint="order-confirmation",
        **{
            "journey-stage": "purchase",
            "customer-id": "cus_7",
            "customer-signature": identity_signature(secret, "cus_7"),
        },
    ) as shop:
        shop.attributes["key"] = await widget_key(shop.origin)
        context = await chromium.new_context(viewport=DESKTOP)
        page = await context.new_page()
        errors = errors_of(page)
        await page.goto(f"{shop.origin}/plain")
        plain_globals = set(await page.evaluate("Object.keys(window)"))
        await page.goto(shop.origin)
        await page.get_by_role("radio", name="9", exact=True).check()
        await page.get_by_label("Conte mais (opcional)").fill("Entrega rápida")
        await page.get_by_role("button", name="Enviar").click()
        await expect(page.get_by_text("Obrigado pela sua opinião!")).to_be_visible()

        # One global at most: here, none. The page's styles did not reach the widget.
        assert set(await page.evaluate("Object.keys(window)")) == plain_globals
        legend = await page.evaluate(
            "(() => { const root = document.querySelector('[data-closeloop-widget]').shadowRoot;"
            " const s = getComputedStyle(root.querySelector('.thanks'));"
            " return [s.color, s.fontFamily, s.letterSpacing]; })()"
        )
        assert legend[0] == "rgb(31, 35, 40)"
        assert "serif" not in legend[1].replace("sans-serif", "")
        assert legend[2] == "normal"
        assert errors == []
        await context.close()

    [item] = await stored(live)
    assert (item["channel"], item["metric"], item["score"]) == ("web", "nps", 9)
    assert item["comment"] == "Entrega rápida"
    assert (item["touchpoint"], item["journey_stage"]) == ("order-confirmation", "purchase")
    assert item["customer"]["external_id"] == "cus_7"
    assert item["customer"]["locale"] == "pt-BR"
    assert item["customer"]["verified"] is True


async def test_from_an_origin_the_key_does_not_allow_the_widget_is_refused(
    live: Live, chromium: Browser, widget_key: Callable[[str], Awaitable[str]]
) -> None:
    async with shop_site(live, source="checkout-web", metric="csat") as shop:
        # The key allows another site only.
        shop.attributes["key"] = await widget_key("https://shop.example.com")
        context = await chromium.new_context(viewport=DESKTOP, locale="en-US")
        page = await context.new_page()
        errors = errors_of(page)
        await page.goto(shop.origin)
        await page.get_by_role("radio", name="4", exact=True).check()
        await page.get_by_role("button", name="Send").click()
        await expect(page.get_by_text("Sorry, your answer could not be sent.")).to_be_visible()
        # The page is none the worse: its own text is there and nothing was thrown.
        await expect(page.locator("h1")).to_have_text("Thank you for your order")
        assert errors == []
        await context.close()
    assert await stored(live) == []


async def test_the_widget_answers_by_keyboard_alone_and_escape_dismisses_it(
    live: Live, chromium: Browser, widget_key: Callable[[str], Awaitable[str]]
) -> None:
    async with shop_site(live, source="checkout-web", metric="csat", locale="es") as shop:
        shop.attributes["key"] = await widget_key(shop.origin)
        context = await chromium.new_context(viewport=PHONE)
        page = await context.new_page()
        await page.goto(shop.origin)
        await expect(page.get_by_role("radio", name="1", exact=True)).to_be_attached()
        focused = "document.activeElement.shadowRoot?.activeElement"

        # The page's link, then the widget's close button, then its scale.
        for _ in range(3):
            await page.keyboard.press("Tab")
        assert await page.evaluate(f"{focused}?.name") == "score"
        ring = await page.evaluate(
            f"(() => {{ const s = getComputedStyle({focused}.nextElementSibling);"
            " return [s.outlineStyle, s.outlineWidth]; })()"
        )
        assert ring == ["solid", "3px"]
        await page.keyboard.press("Space")
        await page.keyboard.press("ArrowRight")
        assert await page.evaluate(f"{focused}.value") == "2"
        await page.keyboard.press("Tab")
        await page.keyboard.type("Demasiado lento")
        await page.keyboard.press("Tab")
        await page.keyboard.press("Enter")
        await expect(page.get_by_text("¡Gracias por su opinión!")).to_be_visible()
        assert await page.evaluate(f"{focused}.className") == "thanks"
        await page.keyboard.press("Escape")
        await expect(page.locator("[data-closeloop-widget]")).to_have_count(0)

        # Answered: the same question is not asked again on this site.
        await page.reload()
        await expect(page.locator("h1")).to_be_visible()
        await expect(page.locator("[data-closeloop-widget]")).to_have_count(0)
        await context.close()
    [item] = await stored(live)
    assert (item["metric"], item["score"], item["comment"]) == ("csat", 2, "Demasiado lento")
    assert item["customer"] == {
        "external_id": None,
        "email": None,
        "phone": None,
        "name": None,
        "locale": "es",
        "contact_consent": True,
        "verified": False,
    }


async def test_a_widget_without_its_key_shows_nothing_and_breaks_nothing(
    live: Live, chromium: Browser
) -> None:
    async with shop_site(live, source="checkout-web") as shop:
        context = await chromium.new_context(viewport=DESKTOP)
        page = await context.new_page()
        errors = errors_of(page)
        async with (
            page.expect_response(f"{live.url}/widget.js") as loaded,
            page.expect_console_message(lambda m: m.type == "warning") as warned,
        ):
            await page.goto(shop.origin)
        assert (await loaded.value).status == 200
        warning = await warned.value
        assert warning.text == "Closeloop widget: data-key and data-source are required."
        await expect(page.locator("h1")).to_have_text("Thank you for your order")
        await expect(page.locator("[data-closeloop-widget]")).to_have_count(0)
        assert errors == []
        await context.close()


@pytest.mark.parametrize("language", LANGUAGES)
async def test_the_widget_in_each_language_is_saved(
    live: Live,
    chromium: Browser,
    widget_key: Callable[[str], Awaitable[str]],
    language: str,
) -> None:
    """NPS and CSAT, at desktop width and on a 360 px phone, from the browser's language."""
    for metric in ("nps", "csat"):
        async with shop_site(live, source="checkout-web", metric=metric) as shop:
            shop.attributes["key"] = await widget_key(shop.origin)
            context = await chromium.new_context(viewport=DESKTOP, locale=LOCALES[language])
            page = await context.new_page()
            await page.goto(shop.origin)
            card = page.locator("[data-closeloop-widget] .card")
            await expect(card).to_have_attribute("lang", language)
            await page.set_viewport_size(PHONE)
            box = await card.bounding_box()
            assert box is not None
            assert box["x"] >= 0
            assert box["x"] + box["width"] <= PHONE["width"]
            await screenshot(page, f"widget-{metric}-{language}")
            await context.close()
