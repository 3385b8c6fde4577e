"""The follow-up page in headless Chromium, as the customer uses it: from the link a real webhook
carried, with and without JavaScript, by keyboard alone, on a phone, in each language."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, Response, expect

from app.web.i18n import LANGUAGES, TEXT
from tests.builders import feedback_body, read_case
from tests.receiver import Receiver
from tests.web.conftest import DESKTOP, PHONE, Live, resolved_link, screenshot, take_case_resolved

LOCALES = {"en": "en-US", "zh-Hans": "zh-CN", "zh-Hant": "zh-TW", "pt": "pt-BR", "es": "es-ES"}

# The WCAG AA contrast of each visible piece of text against the background it sits on.
CONTRASTS = """() => {
  const parse = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const channel = (c) => {
    c /= 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  const luminance = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const background = (node) => {
    for (; node; node = node.parentElement) {
      const c = parse(getComputedStyle(node).backgroundColor);
      if (c.length === 3 || c[3] > 0) return c;
    }
    return [255, 255, 255];
  };
  const found = [];
  const texts = "h1, h2, p, legend, label, span, button, a, textarea";
  for (const node of document.querySelectorAll(texts)) {
    if (!node.getClientRects().length || !node.textContent.trim()) continue;
    const a = luminance(parse(getComputedStyle(node).color)), b = luminance(background(node));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    found.push([node.tagName + "." + node.className, ratio]);
  }
  return found;
}"""


@pytest.fixture
async def context(chromium: Browser) -> AsyncIterator[BrowserContext]:
    context = await chromium.new_context(locale="en-US", viewport=DESKTOP)
    yield context
    await context.close()


def watch(page: Page) -> dict[str, list[str]]:
    """What the page did that a customer would not see: console errors (CSP refusals are
    reported there), uncaught errors, files that failed to load, and every address it asked
    for. (The page's own status, a 410 or a 422 on purpose, is the test's to check, whether
    the browser or the page's script asked.)"""
    seen: dict[str, list[str]] = {"errors": [], "requests": []}

    def console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            seen["errors"].append(message.text)

    def response(answer: Response) -> None:
        if "/f/" not in answer.url and answer.status >= 400:
            seen["errors"].append(f"{answer.status} {answer.url}")

    page.on("console", console)
    page.on("response", response)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("request", lambda r: seen["requests"].append(r.url))
    return seen


def only_from(live: Live, seen: dict[str, list[str]]) -> None:
    assert seen["errors"] == []
    assert seen["requests"]
    assert all(url.startswith(live.url + "/") for url in seen["requests"]), seen["requests"]


async def test_a_customer_answers_from_the_link_the_webhook_carried(
    live: Live, receiver: Receiver, dispatcher: None, chromium: Browser
) -> None:
    """End to end: the case.resolved webhook reaches a real receiver, signed; the customer
    opens its link, answers 2 of 5 with a comment, and the case is reopened with the answer."""
    endpoint = (
        await live.admin.post(
            "/v1/webhooks/endpoints",
            json={"url": receiver.url("/ok"), "event_types": ["case.resolved"]},
        )
    ).json()
    body = feedback_body(customer={"external_id": "cus_5", "locale": "pt-BR"})
    item = (await live.admin.post("/v1/feedback", json=body)).json()
    case_id = item["case"]["id"]
    resolved = await live.admin.post(
        f"/v1/cases/{case_id}/resolve",
        json={"code": "refunded", "customer_message": "Devolvemos o seu dinheiro."},
        headers={"If-Match": '"1"'},
    )
    assert resolved.status_code == 200, resolved.text
    await receiver.wait_for(1, "/ok")
    payload = receiver.at("/ok")[0].verify(endpoint["secret"])
    link = payload["data"]["followup"]["url"]
    assert link.startswith(f"{live.url}/f/")

    context = await chromium.new_context(locale="pt-BR", viewport=PHONE)
    page = await context.new_page()
    seen = watch(page)
    await page.goto(link)
    await expect(page.locator("h1")).to_have_text("Resolvemos o seu problema?")
    await page.get_by_role("radio", name="2 Insatisfeito").check()
    await page.get_by_label("Quer acrescentar alguma coisa? (opcional)").fill("Não chegou nada")
    await page.get_by_role("button", name="Enviar").click()
    await expect(page.locator("h1")).to_have_text("Obrigado!")
    await expect(page.locator(".outcome")).to_contain_text("Reabrimos o seu pedido")
    # Sent by the page's script: the address did not change, and the thanks has the focus.
    assert page.url == link
    assert await page.evaluate("document.activeElement.tagName") == "H1"
    only_from(live, seen)
    await context.close()

    case = await read_case(live.admin, case_id)
    assert case["status"] == "open"
    answer = case["feedback"][0]
    assert (answer["kind"], answer["score"], answer["comment"]) == (
        "followup",
        2,
        "Não chegou nada",
    )
    events = (await live.admin.get(f"/v1/cases/{case_id}/events")).json()["items"]
    assert [e["type"] for e in events[-3:]] == ["followup_received", "status_changed", "reopened"]


async def test_without_javascript_the_form_posts_and_thanks(live: Live, chromium: Browser) -> None:
    await take_case_resolved(live.admin)
    case, token = await resolved_link(live.admin, live.database)
    context = await chromium.new_context(java_script_enabled=False, viewport=DESKTOP)
    page = await context.new_page()
    seen = watch(page)
    await page.goto(f"{live.url}/f/{token}")
    # Sending nothing asks again, saying what is missing.
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator("#problem")).to_contain_text("Choose a score from 1 to 5.")
    await page.get_by_role("radio", name="4 Satisfied").check()
    async with page.expect_navigation():
        await page.get_by_role("button", name="Send").click()
    await expect(page.locator("h1")).to_have_text("Thank you!")
    await expect(page.locator(".outcome")).to_have_text(TEXT["en"]["thanks"])
    only_from(live, seen)
    await context.close()
    after = await read_case(live.admin, case["id"])
    assert after["status"] == "resolved"
    answer = after["feedback"][0]
    assert (answer["kind"], answer["score"]) == ("followup", 4)


async def test_the_page_answers_by_keyboard_alone_with_a_visible_focus(
    live: Live, context: BrowserContext
) -> None:
    await take_case_resolved(live.admin)
    case, token = await resolved_link(live.admin, live.database)
    page = await context.new_page()
    await page.goto(f"{live.url}/f/{token}")

    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "score-1"
    ring = await page.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement.closest('.choice'));"
        " return [s.outlineStyle, s.outlineWidth]; })()"
    )
    assert ring == ["solid", "3px"]
    await page.keyboard.press("Space")
    for _ in range(3):
        await page.keyboard.press("ArrowRight")
    assert await page.evaluate("document.querySelector('input:checked').value") == "4"
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "comment"
    await page.keyboard.type("Fixed, but it took a while")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.tagName") == "BUTTON"
    ring = await page.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement);"
        " return [s.outlineStyle, s.outlineWidth]; })()"
    )
    assert ring == ["solid", "3px"]
    await page.keyboard.press("Enter")
    await expect(page.locator("h1")).to_have_text("Thank you!")
    after = await read_case(live.admin, case["id"])
    assert (after["feedback"][0]["score"], after["feedback"][0]["comment"]) == (
        4,
        "Fixed, but it took a while",
    )


@pytest.mark.parametrize("language", LANGUAGES)
async def test_each_page_in_each_language_fits_a_phone_meets_contrast_and_is_saved(
    live: Live, chromium: Browser, language: str
) -> None:
    """The question, the question again with what to fix, the thanks, and the refusals (used,
    expired, unknown), each saved as a screenshot at desktop width and on a 360 px phone."""
    await take_case_resolved(live.admin)
    text = TEXT[language]
    customer = {"external_id": f"cus_{language}", "locale": LOCALES[language]}
    _, token = await resolved_link(live.admin, live.database, customer=customer)
    expired_case, expired = await resolved_link(
        live.admin, live.database, customer={**customer, "external_id": f"old_{language}"}
    )
    async with live.database.raw() as conn:
        await conn.execute(
            "UPDATE feedback_case SET resolved_at = resolved_at - interval '31 days' WHERE id = $1",
            uuid.UUID(expired_case["id"]),
        )
    context = await chromium.new_context(locale=LOCALES[language], viewport=DESKTOP)
    page = await context.new_page()
    seen = watch(page)
    link = f"{live.url}/f/{token}"

    async def saved(name: str, title: str, status: int | None = None) -> None:
        await expect(page.locator("h1")).to_have_text(title)
        assert await page.evaluate("document.documentElement.lang") == language
        for viewport in (PHONE, DESKTOP):
            await page.set_viewport_size(viewport)
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= viewport["width"], (name, viewport, width)
            low: list[Any] = [c for c in await page.evaluate(CONTRASTS) if c[1] < 4.5]
            assert low == [], (name, low)
        await screenshot(page, f"followup-{name}-{language}")

    response = await page.goto(link)
    assert response is not None
    assert response.status == 200
    await saved("question", text["question"])
    await page.get_by_role("button", name=text["send"]).click()
    await expect(page.locator("#problem")).to_be_focused()
    await saved("question-to-fix", text["question"])
    await page.get_by_role("radio", name=f"5 {text['score_5']}").check()
    await page.get_by_role("button", name=text["send"]).click()
    await saved("thanks", text["thanks_title"])
    for name, address, status, title in (
        ("used", link, 410, text["used_title"]),
        ("expired", f"{live.url}/f/{expired}", 410, text["expired_title"]),
        ("unknown", f"{live.url}/f/{'x' * 32}", 404, text["unknown_title"]),
    ):
        response = await page.goto(address)
        assert response is not None
        assert response.status == status
        await saved(name, title)
    only_from(live, seen)
    await context.close()
