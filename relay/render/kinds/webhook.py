"""The ``webhook`` kind: plain text and subject, plus a JSON body from a template.

The body comes from the template's ``webhook`` part, else the channel's own ``body`` template;
it sees ``text`` and ``subject`` too, and must be valid JSON (``{{ value | tojson }}``).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from jinja2 import Template

from relay.channels.base import Limits
from relay.render.errors import RenderError
from relay.render.kinds.base import Compile, Draft, Parts, RenderKind, Reply, plain_reply
from relay.render.limits import truncate_plain
from relay.render.markup import PLAIN, OutputMarkup
from relay.render.settings import TemplateSettings

__all__ = ["WebhookKind"]


class WebhookKind(RenderKind):
    name: ClassVar[str] = "webhook"
    text_markup: ClassVar[OutputMarkup] = PLAIN

    def compile(self, settings: TemplateSettings, compile_part: Compile) -> Template | None:
        if settings.webhook is None:
            return None
        return compile_part(PLAIN.name, settings.webhook, "webhook")

    def render(self, draft: Draft) -> Parts:
        text = truncate_plain(draft.plain_text(), draft.limits.text)
        subject = draft.subject()
        template: Template | None = draft.own or draft.channel_template("body")
        body = None if template is None else _json_body(draft, template, text, subject)
        return Parts(text=text, subject=subject, body=body)

    def render_reply(self, reply: Reply, limits: Limits) -> Parts:
        return Parts(text=truncate_plain(plain_reply(reply), limits.text))


def _json_body(draft: Draft, template: Template, text: str, subject: str) -> str:
    extra: dict[str, Any] = {"text": text, "subject": subject}
    body = template.render({**draft.ctx, **extra}).strip()
    try:
        json.loads(body)
    except json.JSONDecodeError as exc:
        raise RenderError(
            f"webhook body is not valid JSON (line {exc.lineno}, column {exc.colno}); "
            "write every value as {{ value | tojson }}"
        ) from None
    return body
