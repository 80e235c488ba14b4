"""The render kinds and their explicit registry: adding one = one module and one line here.

A kind (``RenderKind``) is one output markup: its escaping, built-in templates, own template
part, limits, rendering and card replies. Channels name theirs in ``render_kind``.
"""

from __future__ import annotations

from collections.abc import Iterable

from relay.render.kinds.base import Draft, Parts, RenderKind, Reply
from relay.render.kinds.discord import DiscordKind
from relay.render.kinds.email import EmailKind
from relay.render.kinds.plain import PlainKind
from relay.render.kinds.slack import SlackKind
from relay.render.kinds.telegram import TelegramKind
from relay.render.kinds.webhook import WebhookKind
from relay.render.markup import PLAIN, OutputMarkup

__all__ = ["REGISTRY", "Draft", "Parts", "RenderKind", "Reply", "kind_named", "markups_of"]

REGISTRY: dict[str, RenderKind] = {
    kind.name: kind
    for kind in (
        PlainKind(),
        SlackKind(),
        TelegramKind(),
        EmailKind(),
        WebhookKind(),
        DiscordKind(),
    )
}


def kind_named(name: str, kinds: dict[str, RenderKind] | None = None) -> RenderKind:
    """The registered kind ``name`` (or the one in ``kinds``); ``ValueError`` when unknown."""
    kind = (REGISTRY if kinds is None else kinds).get(name)
    if kind is None:
        raise ValueError(f"unknown render kind {name!r}")
    return kind


def markups_of(kinds: Iterable[RenderKind]) -> list[OutputMarkup]:
    """Every markup the kinds compile in, plain first (built-ins and channel templates use it)."""
    found = {PLAIN.name: PLAIN}
    for kind in kinds:
        for markup in (kind.text_markup, *kind.markups):
            found.setdefault(markup.name, markup)
    return list(found.values())
