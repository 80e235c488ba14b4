"""The ``templates:`` entries of relay.yaml: one template per name, with per-kind parts.

Every string is a Jinja2 template (sandboxed). ``text`` is the portable part: it is used for
any kind that has no part of its own (Slack gets it as one section block, email as text and
escaped HTML). ``slack`` is Block Kit as YAML whose string leaves are templates: a list of
blocks, or ``{blocks: [...], text: ...}`` with the notification fallback text.
"""

from __future__ import annotations

from typing import Any

from pydantic import field_validator, model_validator

from relay.confmodel import StrictModel

__all__ = ["EmailTemplate", "SlackTemplate", "TemplateSettings"]


def _check_blocks(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for index, block in enumerate(blocks):
        if not isinstance(block.get("type"), str):
            raise ValueError(f"block {index} needs a 'type' (e.g. section, header, context)")
    return blocks


class EmailTemplate(StrictModel):
    subject: str | None = None
    text: str | None = None
    html: str | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> EmailTemplate:
        if self.subject is None and self.text is None and self.html is None:
            raise ValueError("set at least one of subject, text, html")
        return self


class SlackTemplate(StrictModel):
    blocks: list[dict[str, Any]] | None = None
    text: str | None = None
    """Notification fallback text (mrkdwn)."""

    @field_validator("blocks")
    @classmethod
    def _blocks(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        return None if value is None else _check_blocks(value)

    @model_validator(mode="after")
    def _not_empty(self) -> SlackTemplate:
        if self.blocks is None and self.text is None:
            raise ValueError("set blocks, text or both")
        return self


class TemplateSettings(StrictModel):
    text: str | None = None
    slack: list[dict[str, Any]] | SlackTemplate | None = None
    telegram: str | None = None
    """Telegram HTML (``<b>``, ``<i>``, ``<a href>``, ``<code>``, ``<pre>``…)."""
    email: EmailTemplate | None = None
    webhook: str | None = None
    """The webhook channel's JSON body; use ``| tojson`` for every value."""
    discord: str | None = None
    """Discord message content (markdown; every value literal)."""

    @field_validator("slack")
    @classmethod
    def _slack_blocks(
        cls, value: list[dict[str, Any]] | SlackTemplate | None
    ) -> list[dict[str, Any]] | SlackTemplate | None:
        if isinstance(value, list):
            return _check_blocks(value)
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> TemplateSettings:
        if all(
            part is None
            for part in (
                self.text,
                self.slack,
                self.telegram,
                self.email,
                self.webhook,
                self.discord,
            )
        ):
            raise ValueError(
                "a template needs at least one of text, slack, telegram, email, webhook, discord"
            )
        return self

    @property
    def slack_blocks(self) -> list[dict[str, Any]] | None:
        return self.slack.blocks if isinstance(self.slack, SlackTemplate) else self.slack

    @property
    def slack_text(self) -> str | None:
        return self.slack.text if isinstance(self.slack, SlackTemplate) else None
