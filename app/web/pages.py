"""The follow-up page's HTML: the question, its answers (thanks, and the friendly refusals).

Plain HTML that works without JavaScript; static/followup.js only makes it smoother. Every value
that is not ours (the case number, the customer's own comment) is escaped where it is placed.
Links to the assets are relative, so the page also works behind a proxy that serves the service
under a path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Final

from app.web.i18n import TEXT

# Nothing but this service's own files, no inline code, no frames, forms back to itself only.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # The token is in the address: no other site is told it, no cache keeps it.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
SCORES: Final = (1, 2, 3, 4, 5)


@dataclass(frozen=True, slots=True)
class Page:
    status: int
    language: str
    html: str
    headers: dict[str, str] = field(default_factory=dict)


def _layout(language: str, title: str, body: str) -> str:
    text = TEXT[language]
    return (
        "<!doctype html>\n"
        f'<html lang="{language}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{escape(title)}</title>\n"
        '<link rel="icon" href="../web/icon.svg" type="image/svg+xml">\n'
        '<link rel="stylesheet" href="../web/followup.css">\n'
        '<script src="../web/followup.js" defer></script>\n'
        "</head>\n<body>\n"
        f'<main id="main" data-sending="{escape(text["sending"])}" '
        f'data-offline="{escape(text["offline"])}">\n{body}</main>\n'
        "</body>\n</html>\n"
    )


def question(
    language: str,
    *,
    number: str,
    score: int | None = None,
    comment: str = "",
    errors: dict[str, str] | None = None,
    comment_limit: int,
) -> Page:
    """The question, or (with `errors`, keyed `score` or `comment`) the question again with what
    to fix, the customer's answer kept."""
    text = TEXT[language]
    errors = errors or {}
    parts = [
        f'<h1 tabindex="-1">{escape(text["question"])}</h1>\n',
        f'<p class="intro">{escape(text["intro"].format(number=number))}</p>\n',
    ]
    if errors:
        items = "".join(
            f'<li><a href="#{"score-1" if name == "score" else "comment"}">'
            f"{escape(message)}</a></li>"
            for name, message in errors.items()
        )
        parts.append(
            '<div class="problem" id="problem" role="alert" tabindex="-1">'
            f"<h2>{escape(text['check'])}</h2><ul>{items}</ul></div>\n"
        )
    described = ' aria-describedby="score-error"' if "score" in errors else ""
    invalid = ' aria-invalid="true"' if "score" in errors else ""
    parts.append(f'<form method="post" class="answer">\n<fieldset{described}>\n')
    parts.append(f"<legend>{escape(text['legend'])}</legend>\n")
    if "score" in errors:
        parts.append(f'<p class="field-error" id="score-error">{escape(errors["score"])}</p>\n')
    parts.append('<div class="choices">\n')
    for value in SCORES:
        checked = " checked" if value == score else ""
        parts.append(
            f'<label class="choice" for="score-{value}">'
            f'<input type="radio" id="score-{value}" name="score" value="{value}"'
            f"{checked}{invalid}>"
            f'<span class="num">{value}</span> '
            f'<span class="word">{escape(text[f"score_{value}"])}</span></label>\n'
        )
    parts.append("</div>\n</fieldset>\n")
    parts.append(f'<label class="comment-label" for="comment">{escape(text["comment"])}</label>\n')
    if "comment" in errors:
        parts.append(
            f'<p class="field-error" id="comment-error">{escape(errors["comment"])}</p>\n'
            f'<textarea id="comment" name="comment" rows="4" maxlength="{comment_limit}" '
            f'aria-invalid="true" aria-describedby="comment-error">'
        )
    else:
        parts.append(f'<textarea id="comment" name="comment" rows="4" maxlength="{comment_limit}">')
    # A newline right after <textarea> is dropped by HTML parsers: keep the comment's own.
    parts.append(f"\n{escape(comment)}</textarea>\n")
    parts.append(f'<button type="submit">{escape(text["send"])}</button>\n</form>\n')
    status = 422 if errors else 200
    return Page(status, language, _layout(language, text["question"], "".join(parts)))


def thanks(language: str, *, reopened: bool) -> Page:
    text = TEXT[language]
    message = text["reopened"] if reopened else text["thanks"]
    body = (
        f'<h1 tabindex="-1">{escape(text["thanks_title"])}</h1>\n'
        f'<p class="outcome">{escape(message)}</p>\n'
    )
    return Page(200, language, _layout(language, text["thanks_title"], body))


# The refusals: what the customer is told, and the status a machine is told.
NOTICES: Final = {"used": 410, "expired": 410, "unknown": 404, "limited": 429, "error": 500}


def notice(
    language: str, kind: str, *, days: int = 0, headers: dict[str, str] | None = None
) -> Page:
    text = TEXT[language]
    title = text[f"{kind}_title"]
    body = (
        f'<h1 tabindex="-1">{escape(title)}</h1>\n'
        f'<p class="outcome">{escape(text[kind].format(days=days))}</p>\n'
    )
    return Page(NOTICES[kind], language, _layout(language, title, body), headers or {})
