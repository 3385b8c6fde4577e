"""Who a case is for, and what it is called: customers' identities as stored and looked up,
and case numbers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import phonenumbers

_PHONE_NOISE = re.compile(r"[^0-9+]")
_PHONE_LIKE = re.compile(r"\+?[0-9 ().\-]{5,}")


def normalize_phone(phone: str) -> str:
    """A phone in E.164 (+351912345678), however it was typed (`+351 912-345 678`, `+44 (0)20
    ...`), so the same customer matches across channels. A number that does not say its country
    is kept as its digits: guessing one could make two customers one."""
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return _PHONE_NOISE.sub("", phone)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


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


# Each kind of identity and the column that holds it in feedback (and in cases).
IDENTITY_COLUMNS = {
    "external_id": "customer_external_id",
    "email": "customer_email",
    "phone": "customer_phone",
}


def customer_identities(row: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (kind, value) identities an item or a case carries: external id, e-mail, phone."""
    return [(kind, row[column]) for kind, column in IDENTITY_COLUMNS.items() if row[column]]


def case_number(number: int) -> str:
    return f"C-{number}"
