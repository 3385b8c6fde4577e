"""The follow-up page's logic: which state a link is in, and the customer's answer.

The answer takes the same path as any follow-up posted to `POST /v1/feedback` with
`in_reply_to` (app/feedback/ingest.py): the item, its link to the case, the case's event and a
reopening commit together, and the case's row lock lets one answer through per token. The page is
a caller like a publishable key, with a fixed id of its own: it sends no identity (the token says
whose case it is), and a replay would tell it nothing back.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from pydantic import ValidationError

from app.cases.followups import FollowupLink, find_followup
from app.core.auth import Principal, Scope
from app.core.config import Settings
from app.core.db import Database, session_transaction
from app.core.errors import Conflict, ValidationFailed
from app.feedback.identity import IdentitySecrets
from app.feedback.ingest import ingest_followup
from app.feedback.reads import opening_source
from app.feedback.schemas import FeedbackCreate

# Stands for the page where an API key would stand: in feedback.api_key_id of the answers it
# stores, and as the key of its per-address attempt counter in the shared rate limits.
FOLLOWUP_PAGE_ID: Final = uuid.UUID("0192f3a0-0000-7000-8000-00000000f011")
FOLLOWUP_PAGE: Final = Principal(
    key_id=FOLLOWUP_PAGE_ID,
    name="follow-up page",
    scopes=frozenset({Scope.FEEDBACK_WRITE}),
    allowed_sources=None,
    allowed_origins=None,
    publishable=True,
)
# The answers' source when the case's opening feedback is gone (erased).
FALLBACK_SOURCE: Final = "followup"
# Tokens are made by secrets.token_urlsafe; anything else is no token of ours.
_TOKEN: Final = re.compile(r"[A-Za-z0-9_-]{16,200}")


class LinkState(StrEnum):
    OPEN = "open"
    USED = "used"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class LinkView:
    state: LinkState
    link: FollowupLink | None = None


async def look_up(database: Database, token: str, *, ttl_days: float, now: datetime) -> LinkView:
    """What a link's token opens: its case's question, or why not."""
    if _TOKEN.fullmatch(token) is None:
        return LinkView(LinkState.UNKNOWN)
    async with database.sessionmaker() as session:
        link = await find_followup(session, token)
    if link is None:
        return LinkView(LinkState.UNKNOWN)
    if link.used:
        return LinkView(LinkState.USED, link)
    if link.resolved_at is None or now - link.resolved_at > timedelta(days=ttl_days):
        return LinkView(LinkState.EXPIRED, link)
    return LinkView(LinkState.OPEN, link)


class AnswerInvalid(Exception):
    """The form's fields cannot make an answer: `fields` names which (score, comment)."""

    def __init__(self, fields: set[str]) -> None:
        super().__init__(", ".join(sorted(fields)))
        self.fields = fields


def chosen_score(form: dict[str, list[str]]) -> int | None:
    values = form.get("score", [])
    return int(values[0]) if len(values) == 1 and values[0] in {"1", "2", "3", "4", "5"} else None


def parse_answer(form: dict[str, list[str]]) -> tuple[int, str | None]:
    """The score and comment of a submitted form (the comment's length and characters are the
    ingest schema's to judge)."""
    score = chosen_score(form)
    comments = form.get("comment", [])
    comment = comments[0].strip() if len(comments) == 1 else ""
    if score is None:
        raise AnswerInvalid({"score"} | ({"comment"} if len(comments) > 1 else set()))
    if len(comments) > 1 or "\x00" in comment:  # PostgreSQL text cannot hold a NUL
        raise AnswerInvalid({"comment"})
    return score, comment or None


async def answer(
    database: Database,
    link: FollowupLink,
    token: str,
    *,
    score: int,
    comment: str | None,
    settings: Settings,
    identities: IdentitySecrets,
) -> LinkView | bool:
    """Store the answer through the follow-up path. True when it reopened the case, False when
    not; a LinkView when the link turned out to be spent or gone in the meantime.

    The answer is filed under the source of the feedback that opened the case, so it reaches
    the webhook endpoints and reports that follow that source."""
    async with database.sessionmaker() as session:
        source = await opening_source(session, link.case_id)
    body: dict[str, Any] = {
        "source": source or FALLBACK_SOURCE,
        "channel": "web",
        "metric": "csat",
        "score": score,
        "comment": comment,
        "in_reply_to": {"case_id": str(link.case_id), "token": token},
    }
    try:
        payload = FeedbackCreate.model_validate(body)
    except ValidationError as error:
        raise AnswerInvalid({str(e["loc"][0]) for e in error.errors() if e["loc"]}) from None
    try:
        # The follow-up path commits the item, its link, the case's event and messages together.
        async with session_transaction(database) as session:
            ingested = await ingest_followup(
                session,
                payload,
                principal=FOLLOWUP_PAGE,
                idempotency_key=None,
                settings=settings,
                identities=identities,
            )
    except Conflict as error:
        if error.code == "followup_used":
            return LinkView(LinkState.USED, link)
        raise
    except ValidationFailed as error:
        if any(e.type == "followup_token_invalid" for e in error.errors or ()):
            return LinkView(LinkState.UNKNOWN)  # the case was reopened or resolved again
        raise
    case = ingested.feedback.get("case") or {}
    return bool(case.get("status") == "open")
