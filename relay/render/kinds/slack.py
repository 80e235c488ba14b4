"""The ``slack`` kind: Slack mrkdwn text and Block Kit blocks.

Every ``{{ value }}`` is made literal mrkdwn (``slack_literal``: ``& < >`` escaped, ``*_~```
and a leading ``>`` defused, bare URLs, host names, ``@`` and ``#`` names unlinked); markup
written in the template itself stays, and ``url | link(text)`` is the way to link a value.
``plain_text`` objects get ``slack_unlink`` (clients link bare URLs even there). The built-in
layout is built here, with every event value passed through ``slack_literal`` / ``slack_link``
(``slack_unlink`` in the plain-text header; nothing is pasted into JSON text). Text and blocks
are cut to the destination's limits without splitting an entity or a ``<url|text>`` link.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from relay.channels.base import Limits
from relay.render.blocks import compile_tree, fit_blocks, mrkdwn, plain_text, render_tree
from relay.render.environment import duration
from relay.render.kinds.base import (
    Builtin,
    Compile,
    Draft,
    Parts,
    RenderKind,
    Reply,
    builtin,
    reply_lines,
)
from relay.render.limits import (
    SlackText,
    oneline,
    safe_url,
    slack_link,
    slack_literal,
    slack_unlink,
    truncate_plain,
    truncate_slack,
)
from relay.render.markup import PLAIN, OutputMarkup, plain_link
from relay.render.settings import SlackTemplate, TemplateSettings

__all__ = ["SLACK", "SLACK_PLAIN", "SlackKind", "slack_blocks", "slack_fallback"]

SLACK = OutputMarkup(
    "slack",
    link=slack_link,
    escape=slack_literal,
    filters={
        "slack_escape": slack_literal,
        "slack_literal": slack_literal,
        "slack_link": slack_link,
    },
    escaped=SlackText,
    truncate=lambda text, length: SlackText(truncate_slack(text, length)),
)
"""Slack mrkdwn: every value literal."""

SLACK_PLAIN = OutputMarkup("slack_plain", link=plain_link, escape=slack_unlink)
"""Slack ``plain_text``: every value unlinked."""

MAX_OUTPUTS = 10
MAX_BUTTON_URL = 3000
RUN_LINK_LABEL = "Open in Mosaic"
MAX_ERRORS = 5
MAX_NODE_LABEL = 24


@dataclass(frozen=True, slots=True)
class SlackParts:
    blocks: Any
    """A Block Kit tree with a compiled template at every string leaf (None: no blocks)."""
    text: Any
    """The notification text (a compiled template, or None)."""


class SlackKind(RenderKind):
    name: ClassVar[str] = "slack"
    text_markup: ClassVar[OutputMarkup] = SLACK
    markups: ClassVar[tuple[OutputMarkup, ...]] = (SLACK_PLAIN, PLAIN)
    digest_builtins: ClassVar[Mapping[str, Builtin]] = {"slack": builtin(SLACK, "digest.slack.j2")}
    digest_key: ClassVar[str] = "slack"

    def compile(self, settings: TemplateSettings, compile_part: Compile) -> SlackParts | None:
        blocks = text = None
        if settings.slack_blocks is not None:
            key = "slack.blocks" if isinstance(settings.slack, SlackTemplate) else "slack"
            blocks = compile_tree(settings.slack_blocks, compile_part, key)
        if settings.slack_text is not None:
            text = compile_part(SLACK.name, settings.slack_text, "slack.text")
        return None if blocks is None and text is None else SlackParts(blocks, text)

    def render(self, draft: Draft) -> Parts:
        own: SlackParts = draft.own or SlackParts(None, None)
        text = draft.rendered(own.text) if own.text is not None else draft.text(SLACK.name)
        if own.blocks is not None:
            blocks = render_tree(own.blocks, draft.ctx)
        elif text is not None:
            blocks = [{"type": "section", "text": mrkdwn(text)}]
        else:
            blocks = slack_blocks(draft.ctx)
        if not text:
            text = slack_fallback(draft.ctx)
        return Parts(
            text=truncate_slack(text, draft.limits.text),
            blocks=fit_blocks(blocks, draft.limits) or None,
            subject=draft.subject(),
        )

    def render_digest(self, draft: Draft) -> Parts:
        """A template's own Slack part as for an event; else its ``text`` or the built-in
        digest as mrkdwn text (no blocks: a section holds 3,000 characters at most)."""
        if draft.own is not None:
            return self.render(draft)
        text = draft.text(SLACK.name)
        if text is None:
            text = draft.builtin("slack")
        return Parts(text=truncate_slack(text, draft.limits.text), subject=draft.subject())

    def render_reply(self, reply: Reply, limits: Limits) -> Parts:
        icon, title, detail = reply_lines(reply)
        text = f"{icon} *{slack_literal(title)}*"
        if detail:
            text += f"\n{slack_literal(detail)}"
        if reply.url:
            text += f"\n{slack_link(reply.url, 'Download')}"
        return Parts(text=truncate_slack(text, limits.text))


def _literal(value: Any, limit: int) -> str:
    return slack_literal(truncate_plain(oneline(value), limit))


def _reason_lines(ctx: dict[str, Any]) -> list[str]:
    lines = []
    if ctx["status_message"]:
        lines.append(f"*{ctx['reason_label']}:* {_literal(ctx['status_message'], 1000)}")
    messages = ctx["error_messages"]
    lines += [f"• `{_literal(message, 300)}`" for message in messages[:MAX_ERRORS]]
    hidden = _hidden_count(messages, ctx["errors_more"], MAX_ERRORS)
    if hidden:
        lines.append(f"… and {hidden:,} more")
    if ctx["needs_credits"]:
        lines.append("💳 *Out of credits:* add credits in Mosaic, then run it again.")
    return lines


def _hidden_count(listed: list[Any], more: int, shown: int) -> int:
    """How many items a message that shows the first ``shown`` of ``listed`` leaves out."""
    return more + max(len(listed) - shown, 0)


def _output_lines(ctx: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    key = "outputs" if ctx["outputs"] else "node_outputs"
    for output in ctx[key][:MAX_OUTPUTS]:
        if safe_url(output.get("video_url")):
            label = f"Output {len(lines) + 1}"
            node = oneline(output.get("original_node_id"))
            if node and len(node) <= MAX_NODE_LABEL:
                label += f" ({node})"
            lines.append(f"🎬 {slack_link(output['video_url'], slack_literal(label))}")
    hidden = _hidden_count(ctx[key], ctx[f"{key}_more"], MAX_OUTPUTS)
    if hidden:
        lines.append(f"… and {hidden:,} more outputs")
    return lines


def slack_blocks(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """Header, facts (agent, run, trigger, nodes), failure reason, YouTube link, outputs."""
    agent = oneline(ctx["agent_name"])
    header = slack_unlink(f"{ctx['emoji']} {ctx['status_word']} · {agent}")
    blocks: list[dict[str, Any]] = [{"type": "header", "text": plain_text(header)}]
    if ctx["flag"] == "TEST":
        text = "Test event from Mosaic: the relay received it and this channel works."
        return [*blocks, {"type": "section", "text": mrkdwn(text)}]
    notes = [f"*{_literal(ctx['stale_note'], 300)}*"] if ctx["stale_note"] else []
    notes += [f"_{_literal(ctx['source_note'], 300)}_"] if ctx["source_note"] else []
    if notes:
        blocks.append({"type": "section", "text": mrkdwn("\n".join(notes))})
    progress = ctx["progress"]
    nodes = progress["summary"]
    if progress["total"] and not ctx["is_terminal"]:
        nodes += f"\n{progress['bar']}"
    fields = [
        f"*Agent*\n{_literal(agent, 200)}",
        f"*Run*\n`{_literal(ctx['run_short'], 8)}`",
        f"*Trigger*\n{_literal(ctx['trigger_label'], 100)}",
        f"*Progress*\n{nodes}",
    ]
    if ctx["elapsed"] and ctx["flag"] != "RUN_STARTED":
        fields.append(f"*Elapsed*\n{duration(ctx['elapsed'])}")
    facts: dict[str, Any] = {"type": "section", "fields": [mrkdwn(field) for field in fields]}
    if ctx["image_url"]:
        facts["accessory"] = {
            "type": "image",
            "image_url": ctx["image_url"],
            "alt_text": "Thumbnail",
        }
    blocks.append(facts)

    reason = _reason_lines(ctx)
    if reason:
        blocks.append({"type": "section", "text": mrkdwn("\n".join(reason))})
    trigger = ctx["trigger"]
    if trigger["type"] == "youtube" and (trigger["video_title"] or trigger["video_url"]):
        title = _literal(trigger["video_title"] or "video", 200)
        link = slack_link(trigger["video_url"], title)
        blocks.append({"type": "section", "text": mrkdwn(f"▶️ *YouTube:* {link}")})
    outputs = _output_lines(ctx)
    if outputs:
        blocks.append({"type": "section", "text": mrkdwn("*Outputs*\n" + "\n".join(outputs))})
    run_url = ctx["run_url"]
    if run_url and len(run_url) <= MAX_BUTTON_URL:
        button = {"type": "button", "text": plain_text(RUN_LINK_LABEL), "url": run_url}
        blocks.append({"type": "actions", "elements": [button]})
    footer = f"Run `{_literal(ctx['run_id'], 100)}` · route {_literal(ctx['route'], 100)}"
    blocks.append({"type": "context", "elements": [mrkdwn(footer)]})
    return blocks


def slack_fallback(ctx: dict[str, Any]) -> str:
    """The notification text sent with the blocks (mrkdwn)."""
    text = _literal(ctx["title"], 300)
    if ctx["stale_note"]:
        text += f" — {_literal(ctx['stale_note'], 300)}"
    elif ctx["status_message"] and ctx["flag"] != "TEST":
        text += f" — {_literal(ctx['status_message'], 300)}"
    if ctx["run_url"]:
        text += f" · {slack_link(ctx['run_url'], RUN_LINK_LABEL)}"
    return text
