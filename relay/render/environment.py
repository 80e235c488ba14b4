"""The sandboxed Jinja2 environments and their filters.

- ``plain``: no escaping (console, file, email text, webhook bodies — use ``| tojson`` there).
- ``html``: autoescape (Telegram HTML, email HTML).
- ``slack``: every ``{{ }}`` output is made literal mrkdwn (``finalize`` = ``slack_literal``:
  ``& < >`` escaped, ``*_~``` and a leading ``>`` defused, bare URLs, host names, ``@`` and ``#``
  names unlinked); markup written in the template itself, such as ``*Failed*`` or
  ``<https://example.com|docs>``, stays, and ``url | link(text)`` is the way to link a value.
- ``slack_plain``: Slack ``plain_text``; every ``{{ }}`` output is unlinked (``slack_unlink``).

All are ``ImmutableSandboxedEnvironment`` with ``StrictUndefined``: no ``__class__`` & co., no
mutating the context, no file or environment access (there is no loader and no such global).
``trim_blocks`` and ``lstrip_blocks`` are on. ``None`` renders as an empty string.

Filters, in every environment: ``tojson``, ``truncate(length=255, killwords=False, end='…')``
(grapheme-safe), ``duration`` (seconds -> ``1m 05s``), ``oneline``, ``safe_url`` (the URL if
http(s), else empty), ``link(text)`` (``url | link(text)``: a link in the environment's markup),
``slack_escape`` and ``slack_literal`` (both ``slack_literal``), ``slack_link(text)``,
``html_link(text)``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, Literal

from jinja2 import StrictUndefined, Template, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from relay.render.errors import TemplateConfigError
from relay.render.limits import (
    ELLIPSIS,
    SlackText,
    html_link,
    measure,
    oneline,
    safe_url,
    slack_link,
    slack_literal,
    slack_unlink,
    truncate_html,
    truncate_plain,
    truncate_slack,
)

__all__ = ["MARKUPS", "Environments", "MarkupKind", "check_syntax", "compile_source", "duration"]

MarkupKind = Literal["plain", "slack", "html", "slack_plain"]
MARKUPS: tuple[MarkupKind, ...] = ("plain", "slack", "html")
"""The markups a portable ``text`` part is rendered in."""
_KINDS: tuple[MarkupKind, ...] = (*MARKUPS, "slack_plain")


def duration(seconds: object) -> str:
    """``42s``, ``1m 05s``, ``2h 03m``, ``1d 04h``; empty for None."""
    if seconds is None or isinstance(seconds, bool):
        return ""
    try:
        total = max(0, round(float(seconds)))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return ""
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _plain_link(url: object, text: object = None) -> str:
    label = oneline(text)
    target = safe_url(url)
    if target is None:
        return label
    return f"{label} ({target})" if label and label != target else target


def _truncate(markup: MarkupKind) -> Callable[..., str]:
    def truncate(
        value: object, length: int = 255, killwords: bool = False, end: str = ELLIPSIS
    ) -> str:
        if isinstance(value, SlackText):
            return SlackText(truncate_slack(value, length))
        if isinstance(value, Markup):
            return Markup(truncate_html(value, length))
        text = "" if value is None else str(value)
        if measure(text) <= length:
            return text
        cut = truncate_plain(text, max(length - measure(end), 0), "")
        if not killwords and " " in cut.strip():
            cut = cut.rstrip().rsplit(" ", 1)[0]
        return cut.rstrip() + end

    return truncate


_FINALIZE: dict[MarkupKind, Callable[[Any], Any]] = {
    "slack": slack_literal,
    "slack_plain": slack_unlink,
}

_LINKS: dict[MarkupKind, Callable[..., str]] = {
    "plain": _plain_link,
    "slack": slack_link,
    "html": html_link,
    "slack_plain": _plain_link,
}


def _finalize(markup: MarkupKind) -> Callable[[Any], Any]:
    escape = _FINALIZE.get(markup)
    if escape is None:
        return lambda value: "" if value is None else value
    return lambda value: "" if value is None else escape(value)


def _environment(markup: MarkupKind) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=markup == "html",
        finalize=_finalize(markup),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.globals.pop("lipsum", None)
    env.filters.update(
        truncate=_truncate(markup),
        duration=duration,
        oneline=oneline,
        safe_url=lambda value: safe_url(value) or "",
        link=_LINKS[markup],
        slack_escape=slack_literal,
        slack_literal=slack_literal,
        slack_link=slack_link,
        html_link=html_link,
    )
    return env


class Environments:
    """One environment per output markup; built once per Renderer."""

    def __init__(self) -> None:
        self.by_markup: dict[MarkupKind, ImmutableSandboxedEnvironment] = {
            markup: _environment(markup) for markup in _KINDS
        }

    def compile(self, markup: MarkupKind, source: str, *, name: str, key: str) -> Template:
        return compile_source(self.by_markup[markup], source, name=name, key=key)


def compile_source(
    env: ImmutableSandboxedEnvironment, source: str, *, name: str, key: str
) -> Template:
    """Compile or raise ``TemplateConfigError`` with the line of the syntax error."""
    try:
        return env.from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateConfigError(name, key, exc.message or "syntax error", exc.lineno) from None


@cache
def _checker(markup: MarkupKind) -> ImmutableSandboxedEnvironment:
    return _environment(markup)


def check_syntax(source: str, *, name: str, key: str, markup: MarkupKind = "plain") -> None:
    """Compile ``source`` only to report a syntax error early (e.g. a channel's ``body``)."""
    compile_source(_checker(markup), source, name=name, key=key)
