"""Text helpers every part of the relay shares (it imports nothing of the relay)."""

from __future__ import annotations

import re

__all__ = ["oneline"]

_BLANKS = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def oneline(value: object) -> str:
    """One line: any run of whitespace or control characters (CR, LF, U+2028…) becomes a space."""
    text = "" if value is None else str(value)
    if text.isprintable() and "  " not in text:
        return text.strip()  # printable: no whitespace but single ASCII spaces, nothing to join
    return _BLANKS.sub(" ", text).strip()
