"""Masking personal data that customers type into comments, before the comment is stored (SPEC §7).

Three kinds, in this order:
- e-mail addresses become `[email]`;
- payment card numbers become `[card]`: 13 to 19 digits, written solid or in groups (4-4-4-4,
  4-4-4-4-3, 4-6-5) split by spaces or dashes, that pass the Luhn check. Cards go before phones
  because a card number also looks like a long phone number (one failing the check stays, or
  at 13 to 15 digits is masked as a phone);
- phone numbers become `[phone]`: 7 to 15 digits (E.164 allows 15), with an optional leading +,
  an area code in parentheses, and single spaces, dashes or dots between groups.

Not masked: numbers too short to be a phone ("A-1009", "2024", "12.99"), longer runs (a 20-digit
tracking number), dates ("2026-11-23", "23.11.2026"), amounts with thousands dots
("R$ 1.234,56", "1.234.567"), decimals, IP addresses, year ranges ("2019-2024"), numbers glued
to letters or after "#" ("#12345678", "ID-12345678"). A run of 7 to 15 bare digits, however, is
masked as a phone even when it is an order number: a phone typed without separators cannot be
told apart, and masking too much is the safer mistake. Spelled-out addresses ("ana at example
dot com") are not recognised.

Everything else, Chinese, Arabic and emoji included, is left exactly as it was; when nothing is
masked the very same string object comes back.
"""

from __future__ import annotations

import re

# The local part starts where a run of its characters starts (the lookbehind, after the first
# character for speed as explained below), and every part is bounded as RFC 5321 bounds it: a
# long run of letters before an @ then costs linear time, not quadratic.
_LOCAL = "[A-Za-z0-9À-ÖØ-öø-ÿ._%+\\-]"
_LABEL = "[A-Za-z0-9\\-]{1,63}"
_EMAIL = re.compile(
    rf"{_LOCAL}(?<!{_LOCAL}{_LOCAL}){_LOCAL}{{0,63}}@{_LABEL}(?:\.{_LABEL})*\.[A-Za-z]{{2,63}}"
)

# Each pattern starts by matching one character of a number and only then looks behind it, for
# a letter, digit or number punctuation that would make it the middle of something else: a
# pattern that opens with a character class lets `re` skip in C to where a number could start,
# where one that opens with a lookbehind is tried at every position (twice as slow). ASCII
# letters only: in Chinese a phone number often follows a word directly (电话13800138000).
_NOT_AFTER = r"[A-Za-z_\d.,/#+\-]"
_END = r"(?![A-Za-z_\d]|[.,]\d)"

_CARD = re.compile(
    rf"""
    \d(?<!{_NOT_AFTER}\d)
    (?:
        \d{{12,18}}
      | \d{{3}}(?P<sep>[ \-])\d{{4}}(?P=sep)\d{{4}}(?P=sep)\d{{1,4}}(?:(?P=sep)\d{{3}})?
      | \d{{3}}(?P<amex>[ \-])\d{{6}}(?P=amex)\d{{4,5}}
    )
    {_END}
    """,
    re.VERBOSE,
)

_UNIT = r"(?:\(\d{1,5}\)|\d)"  # a digit, or an area code in parentheses
_PHONE = re.compile(
    rf"""
    [+(\d](?<!{_NOT_AFTER}[+(\d])
    (?!\d{{3}}-\d{{1,2}}-\d{{1,2}}(?!\d))           # not a date: 2026-11-23 10:30
    (?!\d?[.\-]\d{{1,2}}[.\-]\d{{2,4}}(?!\d))       # nor 23.11.2026
    (?:(?<=\+){_UNIT}|(?<=\()\d{{1,5}}\)|(?<=\d))   # the first group, whichever it began
    (?:(?:\ ?[.\-]\ ?|\ )?{_UNIT}){{6,}}            # six more at least: seven digits
    {_END}
    """,
    re.VERBOSE,
)

# Numbers shaped like a phone that are something else.
_NOT_A_PHONE = re.compile(
    r"""
      \d{1,3}(?:\.\d{3})+                  # 1.234.567, an amount
    | \d+\.\d+                             # 1234567.89
    | \d{1,3}(?:\.\d{1,3}){3}              # 192.168.100.1
    | (?:19|20)\d\d\ ?-\ ?(?:19|20)\d\d    # 2019-2024
    """,
    re.VERBOSE,
)
_DIGIT = re.compile(r"\d")


def redact_personal_data(text: str) -> str:
    """The text with e-mail addresses, card numbers and phone numbers masked."""
    redacted = text
    if "@" in redacted:
        redacted = _EMAIL.sub("[email]", redacted)
    if _DIGIT.search(redacted):
        redacted = _CARD.sub(_mask_card, redacted)
        redacted = _PHONE.sub(_mask_phone, redacted)
    return text if redacted == text else redacted


def _mask_card(match: re.Match[str]) -> str:
    digits = [int(char) for char in match[0] if char.isdecimal()]
    return "[card]" if _passes_luhn(digits) else match[0]


def _passes_luhn(digits: list[int]) -> bool:
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def _mask_phone(match: re.Match[str]) -> str:
    number = match[0]
    if sum(char.isdecimal() for char in number) > 15 or _NOT_A_PHONE.fullmatch(number):
        return number
    return "[phone]"
