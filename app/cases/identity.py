"""Who a case is for, and what it is called: customers' identities as stored and looked up,
and case numbers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_PHONE_NOISE = re.compile(r"[^0-9+]")
_PHONE_LIKE = re.compile(r"\+?[0-9 ().\-]{5,}")


def normalize_phone(phone: str) -> str:
    """Phones are kept as + and digits, so the same customer matches across channels."""
    return _PHONE_NOISE.sub("", phone)


def customer_lookup_keys(key: str) -> list[str]:
    """What a customer key given to a lookup may be stored as: itself (an external id is kept
    as given), and the stored form of an e-mail (lower case) or a phone (+ and digits)."""
    key = key.strip()
    keys = [key]
    if "@" in key:
        keys.append(key.lower())
    if _PHONE_LIKE.fullmatch(key):
        keys.append(normalize_phone(key))
    return list(dict.fromkeys(keys))


def customer_identity(row: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """The key complaints join on (external id, else e-mail, else phone) and every identity."""
    keys = [
        k
        for k in (row["customer_external_id"], row["customer_email"], row["customer_phone"])
        if k is not None
    ]
    return (keys[0] if keys else None), keys


def case_number(number: int) -> str:
    return f"C-{number}"
