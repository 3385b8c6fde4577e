"""Each tool's own way of proving a delivery is its, checked over the raw body bytes before
anything parses them. Every comparison is in constant time."""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class Tool(StrEnum):
    TYPEFORM = "typeform"
    DELIGHTED = "delighted"
    SURVEYMONKEY = "surveymonkey"
    FORMBRICKS = "formbricks"
    ZENDESK = "zendesk"
    TALLY = "tally"
    JOTFORM = "jotform"
    QUALTRICS = "qualtrics"
    GOOGLE_FORMS = "google_forms"
    STANDARD = "standard"


# Tools that sign nothing: the connector's secret is a token sent back in a header or the URL.
TOKEN_TOOLS = frozenset({Tool.DELIGHTED, Tool.JOTFORM, Tool.QUALTRICS, Tool.GOOGLE_FORMS})
TOKEN_HEADER = "x-closeloop-token"  # noqa: S105 - a header name
# Zendesk's timestamp is signed with the body; an old one is a replayed capture.
ZENDESK_TOLERANCE_SECONDS = 300


# Tools that sign as Standard Webhooks do, with a `whsec_` + base64 secret.
STANDARD_WEBHOOKS_TOOLS = frozenset({Tool.STANDARD, Tool.FORMBRICKS})
_WHSEC_PREFIX = "whsec_"
_WHSEC_MIN_BYTES = 16


def secret_unusable(tool: Tool, secret: str) -> str | None:
    """Why `secret` can never check a delivery of `tool`, or None. Only Standard Webhooks
    secrets have a form: `whsec_` and the base64 of the key bytes, which both sides decode."""
    if tool not in STANDARD_WEBHOOKS_TOOLS:
        return None
    try:
        key = base64.b64decode(secret.removeprefix(_WHSEC_PREFIX), validate=True)
    except ValueError:
        key = b""
    if len(key) < _WHSEC_MIN_BYTES:
        return (
            f"a Standard Webhooks secret: `{_WHSEC_PREFIX}` and the base64 of at least "
            f"{_WHSEC_MIN_BYTES} bytes (the sender's own, or leave it out to have one made)"
        )
    return None


def _hmac_b64(secret: str, message: bytes, digest: str = "sha256") -> str:
    return base64.b64encode(hmac.new(secret.encode(), message, digest).digest()).decode()


def _equal(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.strip().encode())


def signature_holds(
    tool: Tool,
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    token: str | None,
    now: float,
) -> bool:
    """Whether the delivery carries the tool's valid signature (or token) for `secret`.

    `headers` are lower-cased names; `token` is the URL's `token` query parameter.
    """
    if tool in TOKEN_TOOLS:
        return _equal(secret, headers.get(TOKEN_HEADER)) or _equal(secret, token)
    if tool is Tool.TYPEFORM:
        # Typeform-Signature: sha256=<base64 HMAC-SHA256 of the body>.
        return _equal("sha256=" + _hmac_b64(secret, body), headers.get("typeform-signature"))
    if tool is Tool.TALLY:
        # Tally-Signature: <base64 HMAC-SHA256 of the body>.
        return _equal(_hmac_b64(secret, body), headers.get("tally-signature"))
    if tool is Tool.ZENDESK:
        # X-Zendesk-Webhook-Signature: base64 HMAC-SHA256 of timestamp + body.
        timestamp = headers.get("x-zendesk-webhook-signature-timestamp")
        if timestamp is None or not _recent(timestamp, now):
            return False
        expected = _hmac_b64(secret, timestamp.encode() + body)
        return _equal(expected, headers.get("x-zendesk-webhook-signature"))
    if tool is Tool.SURVEYMONKEY:
        # Sm-Signature: base64 HMAC-SHA1 of the body, keyed with "api_key&api_secret" (the
        # connector's secret is that string).
        return _equal(_hmac_b64(secret, body, "sha1"), headers.get("sm-signature"))
    # Standard Webhooks (ours, and Formbricks'): webhook-id, webhook-timestamp,
    # webhook-signature over id.timestamp.body, checked by the package nobody here wrote.
    try:
        Webhook(secret).verify(body, dict(headers))
    except (WebhookVerificationError, ValueError):
        return False
    return True


def _recent(timestamp: str, now: float) -> bool:
    """Zendesk sends an ISO 8601 time; anything unreadable or far from now is refused."""
    try:
        at = datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return False
    return abs(now - at) <= ZENDESK_TOLERANCE_SECONDS
