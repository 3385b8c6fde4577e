"""Secrets at rest: what the service must read back in clear (webhook signing secrets, source
identity secrets) is encrypted with Fernet when FEEDBACK_SECRET_KEY is set.

Fernet (from `cryptography`) is authenticated encryption with a versioned token format; nothing
here is hand-made. FEEDBACK_SECRET_KEY holds one or more Fernet keys, comma-separated: the first
encrypts, every one decrypts, so a key can be rotated by putting the new one first. A stored
value says how it is kept (`fernet:` + token, or the clear text of an older row), so turning
encryption on needs no migration: rows are encrypted as they are next written.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

SEALED_PREFIX = "fernet:"


class SecretKeyError(RuntimeError):
    """A sealed secret cannot be read: no FEEDBACK_SECRET_KEY, or not the key that sealed it."""


def parse_keys(value: str | None) -> list[Fernet]:
    """The Fernet keys of a FEEDBACK_SECRET_KEY value; ValueError names what is wrong."""
    keys = [part.strip() for part in (value or "").split(",") if part.strip()]
    try:
        return [Fernet(key) for key in keys]
    except ValueError:
        raise ValueError(
            "each key is 32 url-safe base64-encoded bytes, as Fernet.generate_key() makes"
        ) from None


class SecretBox:
    """Seals secrets for storage and opens them again."""

    def __init__(self, keys: str | None) -> None:
        fernets = parse_keys(keys)
        self._fernet = MultiFernet(fernets) if fernets else None

    @property
    def encrypts(self) -> bool:
        return self._fernet is not None

    def seal(self, plain: str) -> str:
        if self._fernet is None:
            return plain
        return SEALED_PREFIX + self._fernet.encrypt(plain.encode()).decode()

    def open(self, stored: str) -> str:
        if not stored.startswith(SEALED_PREFIX):
            return stored
        if self._fernet is None:
            raise SecretKeyError("a secret is encrypted but FEEDBACK_SECRET_KEY is not set")
        try:
            return self._fernet.decrypt(stored.removeprefix(SEALED_PREFIX).encode()).decode()
        except InvalidToken:
            raise SecretKeyError(
                "a secret was encrypted with a key FEEDBACK_SECRET_KEY lacks"
            ) from None


@lru_cache(maxsize=8)
def secret_box(keys: str | None) -> SecretBox:
    """One box per key setting: building the Fernet keys is not free, and they never change."""
    return SecretBox(keys)
