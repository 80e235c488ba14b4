"""Output markups: how a sandboxed environment writes ``{{ value }}`` in one markup.

An ``OutputMarkup`` is what an environment needs to know about a markup: how every value is
escaped (``escape``, Jinja's ``finalize``), whether it autoescapes (HTML), what ``url | link(text)``
writes, the filters it adds to every environment, and how text already escaped for it is cut
(the ``truncate`` filter keeps it valid markup). ``PLAIN`` and ``HTML`` are shared by several
kinds; a kind with a markup of its own defines it in its module (``relay.render.kinds``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup
from markupsafe import escape as markup_escape

from relay.render.limits import html_link, oneline, safe_url, truncate_html

__all__ = ["HTML", "PLAIN", "OutputMarkup", "plain_link"]


@dataclass(frozen=True, eq=False)
class OutputMarkup:
    name: str
    link: Callable[..., str]
    """``url | link(text)``: a link in this markup; just the text when the URL is not http(s)."""
    escape: Callable[[Any], Any] | None = None
    """Applied to every ``{{ }}`` output (None: written as it is)."""
    autoescape: bool = False
    filters: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    """Filters this markup adds to every environment (e.g. ``html_link``)."""
    escaped: type[str] | None = None
    """The type of text already in this markup, which ``escape`` passes through."""
    truncate: Callable[[str, int], str] | None = None
    """Cuts ``escaped`` text to a length without breaking its markup."""

    def literal(self, value: object) -> str:
        """``value`` as literal text in this markup (what ``{{ value }}`` writes)."""
        if self.escape is not None:
            return str(self.escape(value))
        return str(markup_escape(value)) if self.autoescape else str(value)


def plain_link(url: object, text: object = None) -> str:
    """``text (url)`` on one line; just the text when the URL is not http(s)."""
    label = oneline(text)
    target = safe_url(url)
    if target is None:
        return label
    return f"{label} ({target})" if label and label != target else target


PLAIN = OutputMarkup("plain", link=plain_link)
"""No escaping: console, file, email text, webhook bodies (use ``| tojson`` there)."""

HTML = OutputMarkup(
    "html",
    link=html_link,
    autoescape=True,
    filters={"html_link": html_link},
    escaped=Markup,
    truncate=lambda text, length: Markup(truncate_html(text, length)),
)
"""Autoescaped HTML: Telegram, email HTML."""
