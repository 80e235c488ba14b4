"""The renderer: (event, template, channel kind, limits) -> ``Message``. Channels only transport.

Per kind, the first that exists wins: the template's own part (``slack``, ``telegram``,
``email.*``, ``webhook``), then its portable ``text``, then the built-in default. Limits are
applied last, here, for every kind.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from jinja2 import Template
from markupsafe import Markup, escape

from relay.channels.base import Limits, Message
from relay.events import Event
from relay.render.blocks import fit_blocks, mrkdwn, render_tree
from relay.render.compiled import CompiledTemplate, compile_template
from relay.render.context import ContextCache, delivery_context
from relay.render.defaults import EMAIL_FOOTER, DefaultTemplates, slack_blocks, slack_fallback
from relay.render.environment import Environments, MarkupKind
from relay.render.errors import RenderError, TemplateConfigError
from relay.render.limits import (
    clean_text,
    oneline,
    truncate_html,
    truncate_plain,
    truncate_slack,
)
from relay.render.settings import TemplateSettings

__all__ = ["RENDER_KINDS", "Renderer"]

RENDER_KINDS = ("plain", "slack", "telegram", "email", "webhook")
DEFAULT_CAPTION = 1024
DEFAULT_SUBJECT = 250
_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


def _tidy(text: str) -> str:
    return _BLANK_LINES.sub("\n\n", clean_text(text)).strip()


def _template_line(tb: TracebackType | None) -> int | None:
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _describe(exc: Exception, template: str | None, kind: str) -> str:
    where = f"template '{template}'" if template else "built-in template"
    line = _template_line(exc.__traceback__)
    if line:
        where += f" line {line}"
    detail = str(getattr(exc, "message", None) or exc) or type(exc).__name__
    return f"{where} ({kind}): {oneline(detail)[:300]}"


class Renderer:
    """Compiles every template at construction (``TemplateConfigError`` on a syntax error)."""

    def __init__(
        self, templates: Mapping[str, TemplateSettings], agents: Mapping[str, str]
    ) -> None:
        self._envs = Environments()
        self._defaults = DefaultTemplates(self._envs)
        self._agents = dict(agents)
        self._contexts = ContextCache(self._agents)
        self._templates = {
            name: compile_template(name, settings, self._envs)
            for name, settings in templates.items()
        }
        self._bodies: dict[str, Template] = {}

    def render(
        self,
        kind: str,
        template: str | None,
        event: Event,
        *,
        event_id: str,
        route: str,
        channel: str,
        limits: Limits,
        run_started_at: float | None,
        now: float,
        body_template: str | None = None,
        subject_template: str | None = None,
    ) -> Message:
        """The message for one delivery; ``RenderError`` when the template cannot render it.

        ``body_template`` and ``subject_template`` are the channel's own (a webhook's ``body``, an
        email's ``subject``); a named template's parts win over them.
        """
        if kind not in RENDER_KINDS:
            raise ValueError(f"unknown render kind {kind!r}")
        compiled = None
        if template is not None:
            compiled = self._templates.get(template)
            if compiled is None:
                raise RenderError(f"unknown template '{template}'")
        ctx = delivery_context(
            self._contexts.get(event),
            event_id=event_id,
            route=route,
            channel=channel,
            run_started_at=run_started_at,
            now=now,
        )
        try:
            parts = getattr(self, f"_render_{kind}")(compiled, ctx, limits, body_template)
            own_subject = compiled is not None and compiled.email_subject is not None
            if kind == "email" and subject_template is not None and not own_subject:
                subject = oneline(clean_text(self._body(subject_template).render(ctx)))
                if subject:
                    parts["subject"] = truncate_plain(subject, limits.subject or DEFAULT_SUBJECT)
        except RenderError:
            raise
        except Exception as exc:
            raise RenderError(_describe(exc, template, kind)) from None
        return Message(
            **parts,
            image_url=ctx["image_url"],
            run_id=event.run_id,
            event_id=event_id,
            route=route,
            flag=event.flag,
            status=event.status,
            agent_id=event.agent_id,
            extra={"color": ctx["color"], "status_word": ctx["status_word"]},
        )

    # --- shared parts ---------------------------------------------------------------------------

    def _subject(
        self, compiled: CompiledTemplate | None, ctx: dict[str, Any], limits: Limits
    ) -> str:
        template = self._defaults["subject"]
        if compiled is not None and compiled.email_subject is not None:
            template = compiled.email_subject
        subject = oneline(clean_text(template.render(ctx))) or oneline(ctx["title"])
        return truncate_plain(subject, limits.subject or DEFAULT_SUBJECT)

    @staticmethod
    def _user_text(
        compiled: CompiledTemplate | None, markup: MarkupKind, ctx: dict[str, Any]
    ) -> str | None:
        if compiled is None or compiled.text is None:
            return None
        return _tidy(compiled.text[markup].render(ctx))

    def _plain_text(self, compiled: CompiledTemplate | None, ctx: dict[str, Any]) -> str:
        text = self._user_text(compiled, "plain", ctx)
        return text if text is not None else _tidy(self._defaults["plain"].render(ctx))

    # --- one method per kind --------------------------------------------------------------------

    def _render_plain(
        self, compiled: CompiledTemplate | None, ctx: dict[str, Any], limits: Limits, _: str | None
    ) -> dict[str, Any]:
        return {
            "text": truncate_plain(self._plain_text(compiled, ctx), limits.text),
            "subject": self._subject(compiled, ctx, limits),
        }

    def _render_slack(
        self, compiled: CompiledTemplate | None, ctx: dict[str, Any], limits: Limits, _: str | None
    ) -> dict[str, Any]:
        text = None
        if compiled is not None and compiled.slack_text is not None:
            text = _tidy(compiled.slack_text.render(ctx))
        if text is None:
            text = self._user_text(compiled, "slack", ctx)
        if compiled is not None and compiled.slack_blocks is not None:
            blocks = render_tree(compiled.slack_blocks, ctx)
        elif text is not None:
            blocks = [{"type": "section", "text": mrkdwn(text)}]
        else:
            blocks = slack_blocks(ctx)
        if not text:
            text = slack_fallback(ctx)
        return {
            "text": truncate_slack(text, limits.text),
            "blocks": fit_blocks(blocks, limits) or None,
            "subject": self._subject(compiled, ctx, limits),
        }

    def _render_telegram(
        self, compiled: CompiledTemplate | None, ctx: dict[str, Any], limits: Limits, _: str | None
    ) -> dict[str, Any]:
        if compiled is not None and compiled.telegram is not None:
            text = _tidy(compiled.telegram.render(ctx))
        else:
            own = self._user_text(compiled, "html", ctx)
            text = own if own is not None else _tidy(self._defaults["telegram"].render(ctx))
        text = truncate_html(text, limits.text)
        return {
            "text": text,
            "caption": truncate_html(text, limits.caption or DEFAULT_CAPTION),
            "subject": self._subject(compiled, ctx, limits),
        }

    def _render_email(
        self, compiled: CompiledTemplate | None, ctx: dict[str, Any], limits: Limits, _: str | None
    ) -> dict[str, Any]:
        own_text = compiled is not None and (compiled.email_text or compiled.text)
        if compiled is not None and compiled.email_text is not None:
            text = _tidy(compiled.email_text.render(ctx))
        elif own_text:
            text = self._plain_text(compiled, ctx)
        else:
            footer = EMAIL_FOOTER.format(
                route=oneline(ctx["route"]), event_id=oneline(ctx["event_id"])
            )
            text = _tidy(self._defaults["plain"].render(ctx)) + footer
        if compiled is not None and compiled.email_html is not None:
            html = _tidy(compiled.email_html.render(ctx))
        elif own_text:
            html = str(Markup("<br>\n").join(escape(line) for line in text.split("\n")))
        else:
            html = _tidy(self._defaults["email_html"].render(ctx))
        return {
            "text": truncate_plain(text, limits.text),
            "html": truncate_html(html, limits.text),
            "subject": self._subject(compiled, ctx, limits),
        }

    def _render_webhook(
        self,
        compiled: CompiledTemplate | None,
        ctx: dict[str, Any],
        limits: Limits,
        body_template: str | None,
    ) -> dict[str, Any]:
        text = truncate_plain(self._plain_text(compiled, ctx), limits.text)
        subject = self._subject(compiled, ctx, limits)
        template = compiled.webhook if compiled is not None else None
        if template is None and body_template is not None:
            template = self._body(body_template)
        body = None
        if template is not None:
            body = template.render({**ctx, "text": text, "subject": subject}).strip()
            try:
                json.loads(body)
            except json.JSONDecodeError as exc:
                raise RenderError(
                    f"webhook body is not valid JSON (line {exc.lineno}, column {exc.colno}); "
                    "write every value as {{ value | tojson }}"
                ) from None
        return {"text": text, "subject": subject, "body": body}

    def _body(self, source: str) -> Template:
        template = self._bodies.get(source)
        if template is None:
            try:
                template = self._envs.compile("plain", source, name="(channel body)", key="body")
            except TemplateConfigError as exc:
                raise RenderError(str(exc)) from None
            self._bodies[source] = template
        return template
