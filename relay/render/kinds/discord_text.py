"""Discord markdown: event text made literal, masked links, and cuts that keep escapes whole.

Discord renders markdown in message content, embed titles, descriptions and field values, and
turns ``@everyone``, ``@here`` and ``<@…>`` into mentions. ``discord_literal`` (what every
``{{ value }}`` in Discord markup gets) puts a backslash before every character that formats or
links (``\\ * _ ~ ` | < > [ ]``, and ``#``, ``-``, ``1.`` at the start of a line) and a zero-width
space after the ``@`` of ``@everyone`` and ``@here``. Bare http(s) URLs stay as they are, so
they still link (a backslash would break them); they end before any of those characters.
``allowed_mentions: {"parse": []}`` (the channel) stops pings even where this would not.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from relay.render.limits import ELLIPSIS, graphemes, measure, oneline, safe_url

__all__ = ["DiscordText", "discord_link", "discord_literal", "truncate_discord"]

ZERO_WIDTH_SPACE = "\u200b"
_URL = re.compile(r"https?://[^\s<>|`\[\]\"\\*~]+", re.IGNORECASE)
_SPECIAL = re.compile(r"([\\*_~`|<>\[\]])")
_LINE_START = re.compile(r"^([ \t]*)(?:([#-])|(\d+)\.)", re.MULTILINE)
_PING = re.compile(r"@(?=(?:everyone|here)\b)", re.IGNORECASE)
_ATOM = re.compile(r"\[(?:\\.|[^\\\[\]\n])*\]\([^()\s]*\)|\\.", re.DOTALL)
"""A masked link ``[text](url)`` or a backslash escape: never cut in two."""


class DiscordText(str):
    """Text already in Discord markdown: the Discord environment's finalize passes it through."""

    __slots__ = ()


def _line_start(found: re.Match[str]) -> str:
    """``\\#``, ``\\-`` or ``1\\.`` at the start of a line: no heading, list or subtext."""
    indent, mark, number = found.groups()
    return f"{indent}\\{mark}" if mark else f"{indent}{number}\\."


def _escape_words(text: str) -> str:
    text = _SPECIAL.sub(r"\\\1", text)
    text = _LINE_START.sub(_line_start, text)
    return _PING.sub("@" + ZERO_WIDTH_SPACE, text)


def discord_literal(value: object) -> DiscordText:
    """``value`` shown as typed in Discord: no formatting, heading, list, quote, spoiler, masked
    link, mention or custom emoji survives; bare URLs stay linkable."""
    if isinstance(value, DiscordText):
        return value
    text = "" if value is None else str(value)
    out: list[str] = []
    position = 0
    for found in _URL.finditer(text):
        out.append(_escape_words(text[position : found.start()]))
        out.append(found.group())
        position = found.end()
    out.append(_escape_words(text[position:]))
    return DiscordText("".join(out))


def discord_link(url: object, text: object = None) -> DiscordText:
    """``[text](url)`` on one line (the text literal); just the text when the URL is not http(s)."""
    label = text if isinstance(text, DiscordText) else discord_literal(oneline(text))
    target = safe_url(url)
    if target is None:
        return DiscordText(label)
    target = target.replace("(", "%28").replace(")", "%29")
    return DiscordText(f"[{label}]({target})" if label.strip() else target)


def _atoms(text: str) -> Iterator[str]:
    """Graphemes, with each escape and each masked link whole."""
    position = 0
    for found in _ATOM.finditer(text):
        yield from graphemes(text[position : found.start()])
        yield found.group()
        position = found.end()
    yield from graphemes(text[position:])


def truncate_discord(text: str, limit: int) -> str:
    """Discord markdown within ``limit`` (UTF-16 units), ending with '…' when cut; an escape,
    a grapheme or a ``[text](url)`` link is never split."""
    if measure(text) <= limit:
        return text
    budget = limit - measure(ELLIPSIS)
    if budget < 0:
        return ""
    kept: list[str] = []
    used = 0
    for piece in _atoms(text):
        size = measure(piece)
        if used + size > budget:
            break
        kept.append(piece)
        used += size
    return "".join(kept).rstrip() + ELLIPSIS
