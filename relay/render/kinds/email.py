"""The ``email`` kind: a subject line, a plain text part and an HTML part.

The template's ``email.text`` and ``email.html`` win; a portable ``text`` becomes the text part
and, escaped with its line breaks kept, the HTML part. The subject is the template's
``email.subject``, else the channel's own ``subject`` template, else the built-in one. A live
card mails at start and finish only: each update would be another mail. A card's reply is a mail
with the same two parts: plain text, and HTML.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from jinja2 import Template
from markupsafe import Markup, escape

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
    plain_reply,
)
from relay.render.limits import oneline, truncate_html, truncate_plain
from relay.render.markup import HTML, PLAIN, OutputMarkup
from relay.render.settings import TemplateSettings

__all__ = ["EMAIL_FOOTER", "EmailKind"]

EMAIL_FOOTER = "\n\n--\nMosaic Relay · route {route} · event {event_id}"


@dataclass(frozen=True, slots=True)
class EmailParts:
    text: Template | None
    html: Template | None


class EmailKind(RenderKind):
    name: ClassVar[str] = "email"
    text_markup: ClassVar[OutputMarkup] = PLAIN
    markups: ClassVar[tuple[OutputMarkup, ...]] = (HTML,)
    builtins: ClassVar[Mapping[str, Builtin]] = {"html": builtin(HTML, "email.html.j2")}
    digest_builtins: ClassVar[Mapping[str, Builtin]] = {"html": builtin(HTML, "digest.html.j2")}
    live_cards: ClassVar[bool] = False

    def compile(self, settings: TemplateSettings, compile_part: Compile) -> EmailParts | None:
        email = settings.email
        if email is None or (email.text is None and email.html is None):
            return None
        return EmailParts(
            text=None if email.text is None else compile_part(PLAIN.name, email.text, "email.text"),
            html=None if email.html is None else compile_part(HTML.name, email.html, "email.html"),
        )

    def render(self, draft: Draft) -> Parts:
        own: EmailParts = draft.own or EmailParts(None, None)
        own_text = own.text is not None or draft.has_text
        if own.text is not None:
            text = draft.rendered(own.text)
        elif own_text:
            text = draft.plain_text()
        else:
            ctx = draft.ctx
            footer = EMAIL_FOOTER.format(
                route=oneline(ctx["route"]), event_id=oneline(ctx["event_id"])
            )
            text = draft.builtin("text") + footer
        if own.html is not None:
            html = draft.rendered(own.html)
        elif own_text:
            html = str(Markup("<br>\n").join(escape(line) for line in text.split("\n")))
        else:
            html = draft.builtin("html")
        return Parts(
            text=truncate_plain(text, draft.limits.text),
            html=truncate_html(html, draft.limits.text),
            subject=draft.subject(draft.channel_template("subject")),
        )

    def render_reply(self, reply: Reply, limits: Limits) -> Parts:
        html = html_reply(reply).replace("\n", "<br>")
        return Parts(
            text=truncate_plain(plain_reply(reply), limits.text),
            html=truncate_html(html, limits.text),
        )
