"""Chat-action buttons as Block Kit: one ``actions`` block appended to a message's blocks, and
taken off again once a button was used.

Each button's ``action_id`` is ``mosaic_<action>`` and its ``value`` the grant's id
(``ma1:…``); the label is only shown, never trusted. Slack allows 50 blocks: a full message
loses its last block to the buttons. A message without blocks gets its text as a section first
(blocks replace the text on screen, and the buttons need blocks).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relay.actions.model import Button
from relay.render.limits import truncate_plain, truncate_slack

__all__ = ["ACTION_ID_PREFIX", "BLOCK_ID", "MAX_BLOCKS", "with_buttons", "without_buttons"]

ACTION_ID_PREFIX = "mosaic_"
BLOCK_ID = "mosaic_actions"
MAX_BLOCKS = 50
MAX_ELEMENTS = 25
"""Elements of one ``actions`` block."""
MAX_LABEL = 75
"""A button's ``plain_text`` label."""
MAX_SECTION = 3000


def _element(button: Button) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "action_id": f"{ACTION_ID_PREFIX}{button.action}",
        "text": {"type": "plain_text", "text": truncate_plain(button.label, MAX_LABEL)},
        "value": button.value,
    }
    if button.style is not None:
        element["style"] = button.style
    return element


def with_buttons(
    text: str, blocks: list[dict[str, Any]] | None, buttons: Sequence[Button]
) -> list[dict[str, Any]] | None:
    """``blocks`` with an ``actions`` block of ``buttons`` at the end (``blocks`` as they are
    when there are no buttons); ``text`` is mrkdwn, shown as a section when there are no blocks."""
    if not buttons:
        return blocks
    drawn = list(blocks) if blocks else []
    if not drawn and text:
        section = {"type": "mrkdwn", "text": truncate_slack(text, MAX_SECTION)}
        drawn.append({"type": "section", "text": section})
    actions = {
        "type": "actions",
        "block_id": BLOCK_ID,
        "elements": [_element(button) for button in buttons[:MAX_ELEMENTS]],
    }
    return [*drawn[: MAX_BLOCKS - 1], actions]


def without_buttons(blocks: Sequence[Any]) -> list[Any]:
    """``blocks`` without the relay's buttons (``actions`` elements whose ``action_id`` is the
    relay's; an ``actions`` block left empty goes too). Anything else stays as it is."""
    kept: list[Any] = []
    for block in blocks:
        if isinstance(block, dict) and block.get("type") == "actions":
            elements = [element for element in block.get("elements") or [] if not _ours(element)]
            if not elements:
                continue
            block = {**block, "elements": elements}
        kept.append(block)
    return kept


def _ours(element: Any) -> bool:
    if not isinstance(element, dict):
        return False
    action_id = element.get("action_id")
    return isinstance(action_id, str) and action_id.startswith(ACTION_ID_PREFIX)
