"""Slack Block Kit: block trees rendered per string leaf, and the limits every block obeys.

In a block tree from relay.yaml, the ``text`` of a ``mrkdwn`` or ``markdown`` object (or of an
object whose ``type`` is itself a template) is rendered in the Slack environment (values made
literal mrkdwn); any other ``text`` (``plain_text``, rich text) in the ``slack_plain`` one (values
unlinked: Slack clients link bare URLs even there); every other string leaf — URLs, ids, alt
text — in the plain one. Nothing is linked that the template did not link. After rendering, a
text object left empty is dropped with its block (Slack rejects empty text), which lets a
template hide a block with ``{% if %}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import Template

from relay.channels.base import Limits
from relay.render.limits import truncate_plain, truncate_slack

__all__ = ["compile_tree", "fit_blocks", "mrkdwn", "plain_text", "render_tree"]

HEADER = 150
SECTION = 3000
FIELD = 2000
MAX_FIELDS = 10
MAX_ELEMENTS = 10
MAX_BLOCKS = 50

CompileLeaf = Callable[[str, str, str], Template]
"""``compile_leaf(markup, source, key)``."""
_MRKDWN_TYPES = frozenset({"mrkdwn", "markdown"})


def plain_text(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def mrkdwn(text: str) -> dict[str, Any]:
    """A mrkdwn text object; ``verbatim`` stops Slack from linking bare names and URLs itself."""
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _text_markup(kind: object) -> str:
    """The environment for the ``text`` of an object of this ``type``."""
    if not isinstance(kind, str) or kind in _MRKDWN_TYPES or "{" in kind:
        return "slack"  # a type decided at render time may turn out mrkdwn
    return "slack_plain"


def compile_tree(node: Any, compile_leaf: CompileLeaf, key: str) -> Any:
    """The same tree with a compiled template at every string leaf."""
    if isinstance(node, str):
        return compile_leaf("plain", node, key)
    if isinstance(node, list):
        return [compile_tree(item, compile_leaf, f"{key}[{i}]") for i, item in enumerate(node)]
    if isinstance(node, dict):
        compiled: dict[Any, Any] = {}
        for name, value in node.items():
            where = f"{key}.{name}"
            if name == "text" and isinstance(value, str):
                compiled[name] = compile_leaf(_text_markup(node.get("type")), value, where)
            else:
                compiled[name] = compile_tree(value, compile_leaf, where)
        return compiled
    return node


def render_tree(node: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(node, Template):
        return node.render(context)
    if isinstance(node, list):
        return [render_tree(item, context) for item in node]
    if isinstance(node, dict):
        return {name: render_tree(value, context) for name, value in node.items()}
    return node


def _fit_text(obj: Any, limit: int) -> Any:
    """The text object within ``limit``; None when its text is empty."""
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        return obj
    text: str = obj["text"]
    if not text.strip():
        return None
    if obj.get("type") == "mrkdwn":
        return {**obj, "text": truncate_slack(text, limit)}
    return {**obj, "text": truncate_plain(text, limit)}


def _fit_block(block: Any, header: int, section: int) -> Any:
    if not isinstance(block, dict):
        return block
    kind = block.get("type")
    fitted = dict(block)
    if kind == "header":
        fitted["text"] = _fit_text(block.get("text"), header)
        return fitted if fitted["text"] is not None else None
    if kind == "section":
        text = _fit_text(block.get("text"), section)
        raw_fields = block.get("fields")
        fields = raw_fields
        if isinstance(raw_fields, list):
            kept = (_fit_text(item, FIELD) for item in raw_fields)
            fields = [item for item in kept if item is not None][:MAX_FIELDS]
        for name, value in (("text", text), ("fields", fields)):
            if value:
                fitted[name] = value
            else:
                fitted.pop(name, None)
        return fitted if "text" in fitted or "fields" in fitted else None
    if kind == "context" and isinstance(block.get("elements"), list):
        kept = (_fit_text(item, section) for item in block["elements"])
        elements = [item for item in kept if item is not None][:MAX_ELEMENTS]
        if not elements:
            return None
        fitted["elements"] = elements
    return fitted


def fit_blocks(blocks: list[Any], limits: Limits) -> list[dict[str, Any]]:
    """Blocks within Slack's limits (header, section, fields, elements, number of blocks)."""
    header = limits.header or HEADER
    section = limits.section or SECTION
    fitted = [_fit_block(block, header, section) for block in blocks]
    return [block for block in fitted if block is not None][: limits.blocks or MAX_BLOCKS]
