"""Standard Webhooks signatures: `v1,` + base64(HMAC-SHA256(secret, "id.timestamp.body")).

Secrets are `whsec_` + base64 of 32 random bytes; the key is the decoded bytes. While a rotated
secret is in its grace period both sign, as space-separated signatures, and a receiver that
knows either accepts the message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(
    secrets_in_force: list[str], message_id: str, timestamp: int, body: bytes
) -> str:
    return " ".join(sign(s, message_id, timestamp, body) for s in secrets_in_force)


def message_id(uuid_hex: str) -> str:
    """The `webhook-id` of a message: the same on every attempt."""
    return f"msg_{uuid_hex}"
