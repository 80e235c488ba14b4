"""A user template compiled once, at config load, for every markup it can be rendered in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2 import Template

from relay.render.blocks import compile_tree
from relay.render.environment import MARKUPS, Environments, MarkupKind
from relay.render.settings import TemplateSettings

__all__ = ["CompiledTemplate", "compile_template"]


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    name: str
    text: dict[MarkupKind, Template] | None
    """The portable ``text`` part, compiled in each environment (kinds without their own part)."""
    slack_blocks: Any
    slack_text: Template | None
    telegram: Template | None
    email_subject: Template | None
    email_text: Template | None
    email_html: Template | None
    webhook: Template | None


def compile_template(name: str, settings: TemplateSettings, envs: Environments) -> CompiledTemplate:
    """Compile every part; a syntax error raises ``TemplateConfigError`` (part and line)."""

    def one(markup: MarkupKind, source: str | None, key: str) -> Template | None:
        return None if source is None else envs.compile(markup, source, name=name, key=key)

    text: dict[MarkupKind, Template] | None = None
    if settings.text is not None:
        source = settings.text
        text = {markup: envs.compile(markup, source, name=name, key="text") for markup in MARKUPS}
    blocks = None
    if settings.slack_blocks is not None:
        key = "slack" if isinstance(settings.slack, list) else "slack.blocks"
        blocks = compile_tree(
            settings.slack_blocks,
            lambda markup, source, where: envs.compile(markup, source, name=name, key=where),
            key,
        )
    email = settings.email
    return CompiledTemplate(
        name=name,
        text=text,
        slack_blocks=blocks,
        slack_text=one("slack", settings.slack_text, "slack.text"),
        telegram=one("html", settings.telegram, "telegram"),
        email_subject=one("plain", email.subject if email else None, "email.subject"),
        email_text=one("plain", email.text if email else None, "email.text"),
        email_html=one("html", email.html if email else None, "email.html"),
        webhook=one("plain", settings.webhook, "webhook"),
    )
