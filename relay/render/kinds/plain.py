"""The ``plain`` kind: text as it is (console, file)."""

from __future__ import annotations

from typing import ClassVar

from relay.channels.base import Limits
from relay.render.kinds.base import Draft, Parts, RenderKind, Reply, plain_reply
from relay.render.limits import truncate_plain
from relay.render.markup import PLAIN, OutputMarkup

__all__ = ["PlainKind"]


class PlainKind(RenderKind):
    name: ClassVar[str] = "plain"
    text_markup: ClassVar[OutputMarkup] = PLAIN

    def render(self, draft: Draft) -> Parts:
        return Parts(
            text=truncate_plain(draft.plain_text(), draft.limits.text), subject=draft.subject()
        )

    def render_reply(self, reply: Reply, limits: Limits) -> Parts:
        return Parts(text=truncate_plain(plain_reply(reply), limits.text))
