"""The sandboxed Jinja2 environments and their filters: one environment per output markup.

Each markup (``relay.render.markup``; a kind's own in its module under ``relay.render.kinds``)
decides how every ``{{ }}`` output is escaped and what ``url | link(text)`` writes: ``plain``
writes values as they are (use ``| tojson`` in JSON), ``html`` autoescapes, ``slack`` makes every
value literal mrkdwn (markup written in the template itself, such as ``*Failed*`` or
``<https://example.com|docs>``, stays), ``slack_plain`` unlinks values for Slack ``plain_text``.

All are ``ImmutableSandboxedEnvironment`` with ``StrictUndefined``: no ``__class__`` & co., no
mutating the context, no file or environment access (there is no loader and no such global).
``trim_blocks`` and ``lstrip_blocks`` are on. ``None`` renders as an empty string.

Filters, in every environment: ``tojson``, ``truncate(length=255, killwords=False, end='…')``
(grapheme-safe, and markup-safe for text a markup escaped), ``duration`` (seconds -> ``1m 05s``),
``oneline``, ``safe_url`` (the URL if http(s), else empty), ``link(text)`` (a link in the
environment's markup), and the filters every markup adds (``slack_escape`` and ``slack_literal``
(both ``slack_literal``), ``slack_link(text)``, ``html_link(text)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from relay.render.errors import TemplateConfigError
from relay.render.limits import ELLIPSIS, measure, oneline, safe_url, truncate_plain
from relay.render.markup import OutputMarkup

__all__ = ["Environments", "compile_source", "duration"]


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


def _truncate(markups: tuple[OutputMarkup, ...]) -> Callable[..., str]:
    def truncate(
        value: object, length: int = 255, killwords: bool = False, end: str = ELLIPSIS
    ) -> str:
        for markup in markups:
            if markup.escaped and markup.truncate and isinstance(value, markup.escaped):
                return markup.truncate(value, length)
        text = "" if value is None else str(value)
        if measure(text) <= length:
            return text
        cut = truncate_plain(text, max(length - measure(end), 0), "")
        if not killwords and " " in cut.strip():
            cut = cut.rstrip().rsplit(" ", 1)[0]
        return cut.rstrip() + end

    return truncate


def _finalize(markup: OutputMarkup) -> Callable[[Any], Any]:
    escape = markup.escape
    if escape is None:
        return lambda value: "" if value is None else value
    return lambda value: "" if value is None else escape(value)


def _environment(
    markup: OutputMarkup, markups: tuple[OutputMarkup, ...]
) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=markup.autoescape,
        finalize=_finalize(markup),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.globals.pop("lipsum", None)
    for each in markups:
        env.filters.update(each.filters)
    env.filters.update(
        truncate=_truncate(markups),
        duration=duration,
        oneline=oneline,
        safe_url=lambda value: safe_url(value) or "",
        link=markup.link,
    )
    return env


class Environments:
    """One environment per markup (each with every markup's filters); built once per Renderer."""

    def __init__(self, markups: Iterable[OutputMarkup]) -> None:
        unique = tuple({markup.name: markup for markup in markups}.values())
        self.by_markup: dict[str, ImmutableSandboxedEnvironment] = {
            markup.name: _environment(markup, unique) for markup in unique
        }

    def compile(self, markup: str, source: str, *, name: str, key: str) -> Template:
        """``source`` compiled in ``markup``; ``TemplateConfigError`` on a syntax error."""
        return compile_source(self.by_markup[markup], source, name=name, key=key)


def compile_source(
    env: ImmutableSandboxedEnvironment, source: str, *, name: str, key: str
) -> Template:
    """Compile or raise ``TemplateConfigError`` with the line of the syntax error."""
    try:
        return env.from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateConfigError(name, key, exc.message or "syntax error", exc.lineno) from None
