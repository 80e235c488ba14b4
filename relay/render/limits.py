"""The escaping and cutting primitives the output markups are built from.

Each kind (``relay.render.kinds``) picks its escaping and cutting from here for its markup;
a kind with a markup of its own keeps that markup's escaper in its module. Event text (titles,
status messages, errors, ids, URLs) is hostile. It reaches a message only through these
functions (or a kind's own escaper):

- ``clean_text``: lone surrogates, control characters and bidi overrides removed (context build).
- ``slack_escape``: ``& < >`` -> entities; neutralises ``<!channel>``, ``<@U…>``, ``<url|x>``.
  ``slack_literal`` (what every ``{{ value }}`` in Slack mrkdwn gets) also defuses mrkdwn
  formatting (``*_~``` and a leading quote) by swapping in look-alike characters, because Slack
  has no escape for them, and applies ``slack_unlink``.
- ``slack_unlink``: a zero-width space after ``scheme:``, after a dot followed by a letter, after
  ``@`` and ``#``, so no Slack client links a bare URL, host name, e-mail address, ``@here`` or
  ``#channel`` by itself (clients do, even in ``plain_text`` and ``verbatim`` text).
- HTML (Telegram, email): markupsafe escaping; links only for http(s) URLs (``safe_url``).
- ``oneline`` (from ``relay.text``, shared with the channels): no CR/LF or other control
  characters (email subject and other one-line values).

Lengths are counted in UTF-16 code units (what Telegram counts; never less than code points).
Truncation ends with ``…`` and never splits a grapheme (surrogate pair, combining sequence,
emoji ZWJ sequence, flag), an HTML tag or entity, or a Slack ``&amp;`` entity or ``<url|text>``
link; truncated HTML has its open tags closed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from urllib.parse import quote, urlsplit

from markupsafe import Markup, escape

from relay.text import oneline

__all__ = [
    "ELLIPSIS",
    "SlackText",
    "clean_text",
    "graphemes",
    "html_link",
    "measure",
    "oneline",
    "safe_url",
    "slack_escape",
    "slack_link",
    "slack_literal",
    "slack_unlink",
    "truncate_html",
    "truncate_plain",
    "truncate_slack",
]

ELLIPSIS = "…"
MAX_URL = 3000
ZERO_WIDTH_SPACE = "\u200b"

_DROPPED = "\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
"""Control characters but tab and LF, bidi embeddings, overrides and isolates."""
_DROP = re.compile(f"[{_DROPPED}]+")
_UNCLEAN = re.compile(f"[{_DROPPED}\ud800-\udfff]")
"""Anything ``clean_text`` changes (CR among the control characters)."""
_SURROGATE = re.compile("[\ud800-\udfff]")
_NEWLINES = re.compile(r"\r\n?")


class SlackText(str):
    """Text already in Slack mrkdwn: the Slack environment's finalize passes it through."""

    __slots__ = ()


def measure(text: str) -> int:
    """Length in UTF-16 code units."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def clean_text(text: str) -> str:
    """Event text made safe to carry: valid Unicode, ``\\n`` line ends, no control or bidi
    override characters (tabs and newlines stay)."""
    if text.isascii() and text.isprintable():
        return text  # the common case: nothing to clean
    if _UNCLEAN.search(text) is None:
        return str(text)  # no control, bidi or surrogate character: nothing to clean either
    if _SURROGATE.search(text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return _DROP.sub("", _NEWLINES.sub("\n", text))


def safe_url(value: object) -> str | None:
    """The URL if it is an absolute http(s) URL (spaces, ``|``, ``<>``, quotes percent-encoded)."""
    if not isinstance(value, str):
        return None
    url = value.strip()
    if not url or len(url) > MAX_URL:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return quote(url, safe=":/?#[]@!$&'()*+,;=%~")


# --- Slack mrkdwn -------------------------------------------------------------------------------

_LOOKALIKE = str.maketrans({"*": "∗", "_": "ˍ", "~": "∼", "`": "ˋ"})
_QUOTE_START = re.compile(r"^([ \t]*)(&gt;|＞)", re.MULTILINE)
_SELF_LINKING = re.compile(r"(?<=:)(?=//)|(?<=[.\u3002\uff0e\uff61@#])(?=[\w-])")
"""Where a client would start linking by itself: ``scheme:|//``, ``host.|tld``, ``@|name``,
``#|channel`` (full-width and ideographic dots too: browsers read them as dots)."""
_LINK_MARK = re.compile("[:.\u3002\uff0e\uff61@#]")
"""A character ``_SELF_LINKING`` needs: text without one is left as it is."""


def slack_escape(value: object) -> SlackText:
    """``& < >`` as entities: no mention, channel link or ``<url|text>`` survives."""
    if isinstance(value, SlackText):
        return value
    text = "" if value is None else str(value)
    return SlackText(text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def slack_unlink(value: object) -> str:
    """The text with nothing a Slack client links by itself: bare URLs, host names, e-mail
    addresses, ``@names`` and ``#channels`` are broken by an invisible zero-width space."""
    text = "" if value is None else str(value)
    if _LINK_MARK.search(text) is None:
        return text
    return _SELF_LINKING.sub(ZERO_WIDTH_SPACE, text)


def slack_literal(value: object) -> SlackText:
    """Escaped and shown as typed: ``*bold*`` ``_it_`` ``~s~``, a leading ``>``, URLs, e-mail
    addresses and ``@``/``#`` names stay literal text."""
    if isinstance(value, SlackText):
        return value
    text: str = slack_escape(value)
    if "*" in text or "_" in text or "~" in text or "`" in text:
        text = text.translate(_LOOKALIKE)
    if "&gt;" in text or "＞" in text:
        text = _QUOTE_START.sub("\\1\u00ad\\2", text)
    return SlackText(slack_unlink(text))


def slack_link(url: object, text: object = None) -> SlackText:
    """``<url|text>`` on one line; just the text when the URL is not http(s). The text is made
    literal (``slack_literal``) unless it is mrkdwn already."""
    label = (
        SlackText(oneline(text)) if isinstance(text, SlackText) else slack_literal(oneline(text))
    )
    target = safe_url(url)
    if target is None:
        return label
    target = target.replace("&", "&amp;")
    return SlackText(f"<{target}|{label}>" if label.strip() else f"<{target}>")


# --- HTML ---------------------------------------------------------------------------------------


def html_link(url: object, text: object = None) -> Markup:
    """``<a href="url">text</a>`` with both escaped; just the text when the URL is not http(s)."""
    label = escape("" if text is None else text)
    target = safe_url(url)
    if target is None:
        return label
    return Markup('<a href="{}">{}</a>').format(target, label if label.strip() else target)


# --- truncation ---------------------------------------------------------------------------------


def _joins_previous(char: str) -> bool:
    cp = ord(char)
    return (
        unicodedata.category(char) in ("Mn", "Me", "Mc")
        or cp == 0x200D
        or 0xFE00 <= cp <= 0xFE0F
        or 0x1F3FB <= cp <= 0x1F3FF
        or 0xE0020 <= cp <= 0xE007F
        or 0xE0100 <= cp <= 0xE01EF
        or 0xDC00 <= cp <= 0xDFFF
    )


def _regional(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def _pairs(first: str, second: str) -> bool:
    return (first == "\r" and second == "\n") or (_regional(first) and _regional(second))


def graphemes(text: str) -> Iterator[str]:
    """User-perceived characters (close to Unicode extended grapheme clusters)."""
    i, n = 0, len(text)
    while i < n:
        j = i + 1
        if j < n and _pairs(text[i], text[j]):
            j += 1
        while j < n and _joins_previous(text[j]):
            j += 2 if text[j] == "\u200d" and j + 1 < n else 1
        yield text[i:j]
        i = j


def _fit(pieces: Iterator[str], budget: int) -> tuple[list[str], bool]:
    kept: list[str] = []
    used = 0
    for piece in pieces:
        size = measure(piece)
        if used + size > budget:
            return kept, True
        kept.append(piece)
        used += size
    return kept, False


def truncate_plain(text: str, limit: int, end: str = ELLIPSIS) -> str:
    """``text`` within ``limit``, cut at a grapheme boundary and ending with ``end`` when cut."""
    if measure(text) <= limit:
        return text
    budget = limit - measure(end)
    if budget < 0:
        return ""
    kept, _ = _fit(graphemes(text), budget)
    return "".join(kept).rstrip() + end


_SLACK_ATOM = re.compile(r"<[^<>\n]*>|&(?:amp|lt|gt);")


def _atoms(text: str, atom: re.Pattern[str]) -> Iterator[str]:
    position = 0
    for found in atom.finditer(text):
        yield from graphemes(text[position : found.start()])
        yield found.group()
        position = found.end()
    yield from graphemes(text[position:])


def truncate_slack(text: str, limit: int) -> str:
    """Slack mrkdwn within ``limit``; entities and ``<…>`` links are never split."""
    if measure(text) <= limit:
        return text
    budget = limit - measure(ELLIPSIS)
    if budget < 0:
        return ""
    kept, _ = _fit(_atoms(text, _SLACK_ATOM), budget)
    return "".join(kept).rstrip() + ELLIPSIS


_HTML_ATOM = re.compile(
    r"<!--.*?-->|<![^>]*>|</?[A-Za-z][^<>]*>|&(?:#[0-9]+|#[xX][0-9A-Fa-f]+|[A-Za-z][A-Za-z0-9]*);",
    re.DOTALL,
)
_TAG_NAME = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)")
_VOID = frozenset(
    {
        *("area", "base", "br", "col", "embed", "hr", "img"),
        *("input", "link", "meta", "param", "source", "track", "wbr"),
    }
)


def _closers(stack: list[str]) -> str:
    return "".join(f"</{name}>" for name in reversed(stack))


def truncate_html(text: str, limit: int) -> str:
    """HTML within ``limit``: cut between tags/entities/graphemes, ``…`` added, open tags closed.

    Input within the limit is returned unchanged. Stray closing tags are dropped from a cut result.
    """
    if measure(text) <= limit:
        return text
    budget = limit - measure(ELLIPSIS)
    if budget < 0:
        return ""
    out: list[str] = []
    stack: list[str] = []
    used = 0
    for piece in _atoms(text, _HTML_ATOM):
        tag = _TAG_NAME.match(piece) if piece.startswith("<") and len(piece) > 2 else None
        new_stack = stack
        emit = piece
        if tag:
            name = tag.group(2).lower()
            if tag.group(1):
                if name not in stack:
                    continue
                cut = len(stack) - 1 - stack[::-1].index(name)
                emit = _closers(stack[cut + 1 :]) + piece
                new_stack = stack[:cut]
            elif name not in _VOID and not piece.endswith("/>"):
                new_stack = [*stack, name]
        size = measure(emit)
        if used + size + measure(_closers(new_stack)) > budget:
            break
        out.append(emit)
        used += size
        stack = new_stack
    while out and out[-1].isspace():
        out.pop()
    return "".join(out) + ELLIPSIS + _closers(stack)
