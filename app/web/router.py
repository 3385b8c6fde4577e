"""HTTP for the web: the customer's follow-up page (`/f/{token}`), its two assets, and the
embeddable survey widget (`/widget.js`).

The page answers HTML in every case, refusals included (a friendly page with the right status:
404 unknown, 410 used or expired, 429 too many tries), and never a stack trace: whatever goes
wrong unexpectedly is logged and shown as a page that says the answer was not saved.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
from functools import cache
from importlib.resources import files
from typing import Any, Final
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import NotFound
from app.core.ratelimit import RateLimiter
from app.feedback.schemas import MAX_COMMENT_LENGTH
from app.web import followup, pages
from app.web.i18n import TEXT, WIDGET_TEXT, negotiate

logger = logging.getLogger(__name__)

router = APIRouter(tags=["web"])

FORM_MEDIA_TYPE: Final = "application/x-www-form-urlencoded"
_ASSET_TYPES: Final = {
    "followup.css": "text/css; charset=utf-8",
    "followup.js": "text/javascript; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
# Where static/widget.js takes its words (app/web/i18n.py).
_WIDGET_TEXT_MARK: Final = b"__WIDGET_TEXT__"
_HTML_DOC: Final[dict[int | str, dict[str, Any]]] = {
    200: {"content": {"text/html": {}}, "description": "The page"},
    404: {"content": {"text/html": {}}, "description": "No case holds this link"},
    410: {"content": {"text/html": {}}, "description": "The link was used, or has expired"},
    429: {"content": {"text/html": {}}, "description": "Too many tries from this address"},
}
_ANSWER_DOC: Final[dict[int | str, dict[str, Any]]] = {
    **_HTML_DOC,
    422: {"content": {"text/html": {}}, "description": "The question again, with what to fix"},
}
_FORM_DOC: Final = {
    "requestBody": {
        "required": True,
        "content": {
            FORM_MEDIA_TYPE: {
                "schema": {
                    "type": "object",
                    "required": ["score"],
                    "properties": {
                        "score": {"type": "integer", "minimum": 1, "maximum": 5},
                        "comment": {"type": "string", "maxLength": MAX_COMMENT_LENGTH},
                    },
                }
            }
        },
    }
}


@cache
def _static(name: str, *, gzipped: bool = False) -> bytes:
    data = files("app.web").joinpath("static", name).read_bytes()
    if name == "widget.js":
        words = json.dumps(WIDGET_TEXT, ensure_ascii=False, separators=(",", ":"))
        data = data.replace(_WIDGET_TEXT_MARK, words.encode())
    # mtime=0: the same bytes on every replica, so caches and ETags agree.
    return gzip.compress(data, mtime=0) if gzipped else data


def _static_response(
    request: Request, name: str, media_type: str, extra: dict[str, str] | None = None
) -> Response:
    """A static file, gzipped (once, then kept) for clients that take it."""
    gzipped = "gzip" in request.headers.get("accept-encoding", "").lower()
    headers = {
        "Cache-Control": "public, max-age=3600",
        "X-Content-Type-Options": "nosniff",
        "Vary": "Accept-Encoding",
        **(extra or {}),
    }
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    return Response(_static(name, gzipped=gzipped), media_type=media_type, headers=headers)


def _html(page: pages.Page) -> HTMLResponse:
    headers = {**pages.PAGE_HEADERS, "Content-Language": page.language, **page.headers}
    return HTMLResponse(page.html, status_code=page.status, headers=headers)


def _attempt_refused(request: Request, settings: Settings, language: str) -> pages.Page | None:
    """Every try of a token counts against its client address: a few a minute at most."""
    limiter: RateLimiter = request.app.state.rate_limiter
    counter = (followup.FOLLOWUP_PAGE_ID, limiter.client_address(request))
    wait = limiter.take(counter, 1, settings.followup_attempts_per_minute)
    if wait is None:
        return None
    return pages.notice(language, "limited", headers={"Retry-After": str(max(1, math.ceil(wait)))})


def _refusal(view: followup.LinkView, language: str, settings: Settings) -> pages.Page:
    return pages.notice(language, view.state.value, days=round(settings.followup_ttl_days))


async def _followup(request: Request, token: str) -> pages.Page:
    settings: Settings = request.app.state.settings
    accept_language = request.headers.get("accept-language")
    refused = _attempt_refused(request, settings, negotiate(None, accept_language))
    if refused is not None:
        return refused
    database = request.app.state.database
    view = await followup.look_up(
        database, token, ttl_days=settings.followup_ttl_days, now=utcnow()
    )
    link = view.link
    language = negotiate(link.customer_locale if link else None, accept_language)
    if view.state is not followup.LinkState.OPEN or link is None:
        return _refusal(view, language, settings)
    if request.method == "GET":
        return pages.question(language, number=link.number, comment_limit=MAX_COMMENT_LENGTH)

    form = await _form(request)
    text = TEXT[language]
    messages = {
        "score": text["score_missing"],
        "comment": text["comment_invalid"].format(limit=f"{MAX_COMMENT_LENGTH:,}"),
    }
    kept_comment = (form.get("comment") or [""])[0]
    try:
        score, comment = followup.parse_answer(form)
        outcome = await followup.answer(
            database,
            link,
            token,
            score=score,
            comment=comment,
            settings=settings,
            identities=request.app.state.identities,
        )
    except followup.AnswerInvalid as invalid:
        errors: dict[str, str] = {
            name: message for name, message in messages.items() if name in invalid.fields
        }
        return pages.question(
            language,
            number=link.number,
            score=followup.chosen_score(form),
            comment=kept_comment.replace("\x00", ""),
            errors=errors or {"score": messages["score"]},
            comment_limit=MAX_COMMENT_LENGTH,
        )
    if isinstance(outcome, followup.LinkView):
        return _refusal(outcome, language, settings)
    return pages.thanks(language, reopened=outcome)


async def _form(request: Request) -> dict[str, list[str]]:
    """The posted form's fields; a body that is no form in UTF-8 has none."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != FORM_MEDIA_TYPE:
        return {}
    try:
        return parse_qs((await request.body()).decode(), max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        return {}


async def _page(request: Request, token: str) -> HTMLResponse:
    try:
        page = await _followup(request, token)
    except Exception:  # the customer sees a page that says so; the log says what it was
        logger.exception("the follow-up page failed")
        language = negotiate(None, request.headers.get("accept-language"))
        page = pages.notice(language, "error")
    return _html(page)


@router.get("/f/{token}", response_class=HTMLResponse, responses=_HTML_DOC)
async def followup_page(request: Request, token: str) -> HTMLResponse:
    """The follow-up question of a resolved case, for its customer: the link `case.resolved`
    carries (`FEEDBACK_PUBLIC_URL/f/{token}`). No API key: the token allows one answer, within
    `FEEDBACK_FOLLOWUP_TTL_DAYS` of the resolution. HTML, in the customer's language."""
    return await _page(request, token)


@router.post(
    "/f/{token}", response_class=HTMLResponse, responses=_ANSWER_DOC, openapi_extra=_FORM_DOC
)
async def answer_followup(request: Request, token: str) -> HTMLResponse:
    """The customer's answer (a plain form post): stored on the case as a follow-up, once per
    token; a negative answer reopens the case. Answers the thank-you page, or the question
    again (422) with what to fix."""
    return await _page(request, token)


@router.get("/web/{name}", include_in_schema=False)
async def followup_asset(request: Request, name: str) -> Response:
    media_type = _ASSET_TYPES.get(name)
    if media_type is None:
        raise NotFound("No such file.", code="route_not_found")
    return _static_response(request, name, media_type)


@router.get(
    "/widget.js",
    response_class=Response,
    responses={200: {"content": {"text/javascript": {}}, "description": "The widget"}},
)
async def widget(request: Request) -> Response:
    """The embeddable survey widget: paste `<script src="https://HOST/widget.js"
    data-key="cl_..." data-source="checkout-web" data-metric="nps" async></script>` into a page.
    It asks one question (NPS or CSAT, optional comment) and posts it to `POST /v1/feedback`
    with the publishable key, which must list the page's origin in `allowed_origins`."""
    return _static_response(
        request,
        "widget.js",
        "text/javascript; charset=utf-8",
        # Pages that isolate themselves (Cross-Origin-Embedder-Policy) may still load it.
        {"Cross-Origin-Resource-Policy": "cross-origin"},
    )
