"""Traditional Chinese read as simplified, so one word list or one rule covers both scripts.

OpenCC's `t2s` conversion (characters and the phrases whose simplified form is not one character
per character), from the `opencc` package: its dictionaries ship inside the wheel, nothing is
downloaded. Text without Han characters comes back untouched, without a call into OpenCC.
"""

from __future__ import annotations

import re
from typing import Final

import opencc

_HAN: Final = re.compile("[\u3400-\u9fff\uf900-\ufaff]")
_TO_SIMPLIFIED: Final = opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """`text` with traditional characters in their simplified form: 態度差 is 态度差."""
    if text.isascii() or not _HAN.search(text):
        return text
    return str(_TO_SIMPLIFIED.convert(text))
