"""What a render kind is, and what it is handed to render one delivery.

A kind is one output markup of the relay: the markups its templates are compiled in (escaping),
its built-in templates, its own part of a user template, how it fits a destination's ``Limits``,
and how it writes a live card's reply. A channel names its kind in ``render_kind``; the kinds
are registered in ``relay.render.kinds.REGISTRY``.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, ClassVar

from jinja2 import Template
from markupsafe import escape

from relay.channels.base import Limits
from relay.render.limits import clean_text, oneline, truncate_plain
from relay.render.markup import PLAIN, OutputMarkup
from relay.render.settings import TemplateSettings

__all__ = [
    "COMMON_BUILTINS",
    "DEFAULT_SUBJECT",
    "DIGEST_BUILTINS",
    "Builtin",
    "Compile",
    "CompiledTemplate",
    "Draft",
    "Parts",
    "RenderKind",
    "Reply",
    "builtin",
    "html_reply",
    "plain_reply",
    "reply_lines",
]

DEFAULT_SUBJECT = 250
MAX_REPLY_TITLE = 200
MAX_REPLY_DETAIL = 1000
_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")

Compile = Callable[[str, str, str], Template]
"""``compile(markup, source, key)``: one part of a user template compiled in that markup
(``TemplateConfigError`` names the template, ``key`` and the line)."""


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    """A user template compiled once, at config load, for every kind and markup it is
    rendered in."""

    name: str
    text: dict[str, Template] | None
    """The portable ``text`` part, compiled in each kind's text markup (by markup name)."""
    subject: Template | None
    """``email.subject``: the subject line of every kind."""
    parts: dict[str, Any]
    """Each kind's own part (by kind name), as its ``compile`` made it; kinds without one absent."""


@dataclass(frozen=True, slots=True)
class Builtin:
    """A built-in template: its markup, its source and the name errors show."""

    markup: str
    source: str
    label: str


def builtin(markup: OutputMarkup, file: str) -> Builtin:
    """The built-in template ``file`` of ``relay/render/templates/``."""
    folder = resources.files("relay.render").joinpath("templates")
    return Builtin(markup.name, folder.joinpath(file).read_text("utf-8"), file)


DIGEST_BUILTINS: dict[str, Builtin] = {
    "text": builtin(PLAIN, "digest.txt.j2"),
    "subject": Builtin(PLAIN.name, "{{ title }}", "digest subject"),
}
"""Built-in digest templates every kind has; ``text`` is compiled in each kind's text markup."""

COMMON_BUILTINS: dict[str, Builtin] = {
    "text": builtin(PLAIN, "plain.txt.j2"),
    "subject": builtin(PLAIN, "subject.txt.j2"),
}
"""Built-ins every kind may use: the plain text message and the subject line."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply under a live card: a node that failed, or a final output."""

    key: str
    title: str
    detail: str | None
    url: str | None
    failure: bool


@dataclass(frozen=True, slots=True)
class Parts:
    """What a kind renders: the fields of a ``Message`` that are in its markup."""

    text: str
    subject: str | None = None
    html: str | None = None
    blocks: list[dict[str, Any]] | None = None
    caption: str | None = None
    body: str | None = None


def tidy(text: str) -> str:
    """Rendered template output: cleaned, runs of blank lines made one, stripped."""
    return _BLANK_LINES.sub("\n\n", clean_text(text)).strip()


class Draft:
    """One delivery as a kind sees it: the template variables (``ctx``), the destination's
    ``limits``, the kind's own part of the template (``own``, None when it has none), and the
    shared pieces every kind may use (portable text, subject, built-ins, channel templates)."""

    def __init__(
        self,
        ctx: dict[str, Any],
        limits: Limits,
        template: CompiledTemplate | None,
        own: Any,
        builtins: Mapping[str, Template],
        channel_template: Callable[[str], Template | None],
    ) -> None:
        self.ctx = ctx
        self.limits = limits
        self.own = own
        self._template = template
        self._builtins = builtins
        self._channel_template = channel_template

    def rendered(self, template: Template, **extra: Any) -> str:
        """``template`` rendered with the delivery's variables (and ``extra``), tidied."""
        return tidy(template.render({**self.ctx, **extra} if extra else self.ctx))

    @property
    def has_text(self) -> bool:
        """Whether the template has a portable ``text`` part."""
        return self._template is not None and self._template.text is not None

    def text(self, markup: str) -> str | None:
        """The template's portable ``text`` rendered in ``markup``; None when it has none."""
        if self._template is None or self._template.text is None:
            return None
        return self.rendered(self._template.text[markup])

    def builtin(self, key: str) -> str:
        """A built-in template of the kind (or a common one) rendered."""
        return self.rendered(self._builtins[key])

    def plain_text(self) -> str:
        """The portable ``text`` in plain markup, else the built-in plain message."""
        text = self.text(PLAIN.name)
        return text if text is not None else self.builtin("text")

    def channel_template(self, key: str) -> Template | None:
        """The channel's own template ``key`` (a webhook's ``body``…); None when it has none."""
        return self._channel_template(key)

    def subject(self, fallback: Template | None = None) -> str:
        """One line within ``limits.subject``: the template's ``email.subject``, else
        ``fallback`` (a channel's own subject) when it renders to something, else the built-in."""
        if self._template is not None and self._template.subject is not None:
            candidates = [self._template.subject]
        else:
            candidates = [t for t in (fallback, self._builtins["subject"]) if t is not None]
        subject = ""
        for candidate in candidates:
            subject = oneline(clean_text(candidate.render(self.ctx)))
            if subject:
                break
        subject = subject or oneline(self.ctx["title"])
        return truncate_plain(subject, self.limits.subject or DEFAULT_SUBJECT)


def reply_lines(reply: Reply) -> tuple[str, str, str | None]:
    """``(icon, title, detail)`` of a reply: one line each, cut to their length."""
    title = truncate_plain(oneline(reply.title), MAX_REPLY_TITLE)
    detail = truncate_plain(oneline(reply.detail), MAX_REPLY_DETAIL) if reply.detail else None
    return ("❌" if reply.failure else "🎬"), title, detail


def plain_reply(reply: Reply) -> str:
    icon, title, detail = reply_lines(reply)
    return (
        f"{icon} {title}"
        + (f"\n{detail}" if detail else "")
        + (f"\n{reply.url}" if reply.url else "")
    )


def html_reply(reply: Reply) -> str:
    """The reply in HTML: the title bold, every piece of event text escaped."""
    icon, title, detail = reply_lines(reply)
    text = f"{icon} <b>{escape(title)}</b>"
    if detail:
        text += f"\n{escape(detail)}"
    if reply.url:
        text += f'\n<a href="{escape(reply.url)}">Download</a>'
    return text


class RenderKind(ABC):
    """One output markup; a subclass per kind, registered once."""

    name: ClassVar[str]
    text_markup: ClassVar[OutputMarkup]
    """The markup a template's portable ``text`` is rendered in for this kind."""
    markups: ClassVar[tuple[OutputMarkup, ...]] = ()
    """Other markups its templates are compiled in (an environment is built for each)."""
    builtins: ClassVar[Mapping[str, Builtin]] = {}
    """Its built-in templates, besides ``COMMON_BUILTINS``."""
    live_cards: ClassVar[bool] = True
    """Whether a live card is sent again as the run progresses (else at start and finish)."""
    digest_builtins: ClassVar[Mapping[str, Builtin]] = {}
    """Its built-in digest templates, besides ``DIGEST_BUILTINS`` (compiled in its text markup)."""
    digest_key: ClassVar[str] = "text"
    """The built-in digest template whose length decides how many runs a digest lists."""

    def compile(self, settings: TemplateSettings, compile_part: Compile) -> Any:
        """The kind's own part of a user template, compiled; None when the template has none."""
        return None

    @abstractmethod
    def render(self, draft: Draft) -> Parts:
        """The message for one delivery, within ``draft.limits``."""

    def render_digest(self, draft: Draft) -> Parts:
        """A digest (many runs in one message) within ``draft.limits``: by default what
        ``render`` makes of the digest's variables and built-ins."""
        return self.render(draft)

    @abstractmethod
    def render_reply(self, reply: Reply, limits: Limits) -> Parts:
        """A short reply under a live card, every piece of event text escaped."""
