"""The ``telegram`` kind: Telegram HTML (``<b>``, ``<i>``, ``<a href>``, ``<code>``, ``<pre>``…).

The text is cut to ``limits.text`` and again to ``limits.caption`` for a photo's caption; a cut
never splits a tag or an entity and closes the tags it leaves open.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from jinja2 import Template

from relay.channels.base import Limits
from relay.render.kinds.base import (
    Builtin,
    Compile,
    Draft,
    Parts,
    RenderKind,
    Reply,
    builtin,
    html_reply,
)
from relay.render.limits import truncate_html
from relay.render.markup import HTML, OutputMarkup
from relay.render.settings import TemplateSettings

__all__ = ["TelegramKind"]

DEFAULT_CAPTION = 1024


class TelegramKind(RenderKind):
    name: ClassVar[str] = "telegram"
    text_markup: ClassVar[OutputMarkup] = HTML
    builtins: ClassVar[Mapping[str, Builtin]] = {"telegram": builtin(HTML, "telegram.html.j2")}
    digest_builtins: ClassVar[Mapping[str, Builtin]] = {
        "telegram": builtin(HTML, "digest.telegram.j2")
    }
    digest_key: ClassVar[str] = "telegram"

    def compile(self, settings: TemplateSettings, compile_part: Compile) -> Template | None:
        if settings.telegram is None:
            return None
        return compile_part(HTML.name, settings.telegram, "telegram")

    def render(self, draft: Draft) -> Parts:
        if draft.own is not None:
            text = draft.rendered(draft.own)
        else:
            own = draft.text(HTML.name)
            text = own if own is not None else draft.builtin("telegram")
        text = truncate_html(text, draft.limits.text)
        return Parts(
            text=text,
            caption=truncate_html(text, draft.limits.caption or DEFAULT_CAPTION),
            subject=draft.subject(),
        )

    def render_reply(self, reply: Reply, limits: Limits) -> Parts:
        return Parts(text=truncate_html(html_reply(reply), limits.text))
