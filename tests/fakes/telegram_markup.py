"""The fake Telegram's check of ``reply_markup``: inline keyboards only, shaped as Telegram
requires (rows of buttons, each with a text and exactly one action; ``callback_data`` of 1 to 64
bytes). The relay never sends reply keyboards, so any other markup is refused too."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["MAX_BUTTONS", "MAX_CALLBACK_DATA", "MAX_ROW", "MarkupError", "inline_markup"]

MAX_CALLBACK_DATA = 64
MAX_ROW = 8
MAX_BUTTONS = 100
_ACTIONS = ("callback_data", "url")


class MarkupError(ValueError):
    """The markup Telegram would refuse; the text is Telegram's description (no prefix)."""


def inline_markup(value: Any) -> dict[str, Any] | None:
    """The parsed ``reply_markup`` (None when absent), or ``MarkupError``."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise MarkupError("can't parse reply keyboard markup JSON object") from None
    if not isinstance(value, dict) or set(value) != {"inline_keyboard"}:
        raise MarkupError("unsupported reply markup (the fake takes inline keyboards only)")
    rows = value["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise MarkupError('field "inline_keyboard" must be an Array of Arrays')
    if sum(len(row) for row in rows) > MAX_BUTTONS:
        raise MarkupError("too many inline keyboard buttons")
    for row in rows:
        if len(row) > MAX_ROW:
            raise MarkupError("too many buttons in a row of the inline keyboard")
        for button in row:
            _check_button(button)
    return value


def _check_button(button: Any) -> None:
    if not isinstance(button, dict):
        raise MarkupError("can't parse inline keyboard button: object expected")
    text = button.get("text")
    if not isinstance(text, str) or not text.strip():
        raise MarkupError("can't parse inline keyboard button: Text must be non-empty")
    unknown = set(button) - {"text", *_ACTIONS}
    if unknown:
        raise MarkupError(f"can't parse inline keyboard button: unknown field {sorted(unknown)[0]}")
    actions = [name for name in _ACTIONS if name in button]
    if len(actions) != 1:
        raise MarkupError(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )
    data = button.get("callback_data")
    if "callback_data" in button and (
        not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA
    ):
        raise MarkupError("BUTTON_DATA_INVALID")
    url = button.get("url")
    if "url" in button and (not isinstance(url, str) or not url.startswith(("http", "tg:"))):
        raise MarkupError("BUTTON_URL_INVALID")
