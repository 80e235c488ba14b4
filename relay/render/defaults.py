"""The built-in messages, used when no template is named (or a template lacks the kind's part).

Text kinds are Jinja templates in ``templates/`` rendered by the same sandboxed environments as
user templates. Slack's Block Kit layout is built here, with every event value passed through
``slack_literal`` / ``slack_link`` (``slack_unlink`` in the plain-text header; nothing is pasted
into JSON text).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from jinja2 import Template

from relay.render.blocks import mrkdwn, plain_text
from relay.render.environment import Environments, MarkupKind, duration
from relay.render.limits import (
    oneline,
    safe_url,
    slack_link,
    slack_literal,
    slack_unlink,
    truncate_plain,
)

__all__ = ["DefaultTemplates", "slack_blocks", "slack_fallback"]

_FILES: dict[str, tuple[MarkupKind, str]] = {
    "plain": ("plain", "plain.txt.j2"),
    "subject": ("plain", "subject.txt.j2"),
    "telegram": ("html", "telegram.html.j2"),
    "email_html": ("html", "email.html.j2"),
}
EMAIL_FOOTER = "\n\n--\nMosaic Relay · route {route} · event {event_id}"
MAX_OUTPUTS = 10
MAX_ERRORS = 5
MAX_NODE_LABEL = 24


class DefaultTemplates:
    """The compiled built-in text templates: plain, subject, telegram, email_html."""

    def __init__(self, envs: Environments) -> None:
        folder = resources.files("relay.render").joinpath("templates")
        self.by_key: dict[str, Template] = {
            key: envs.compile(
                markup, folder.joinpath(file).read_text("utf-8"), name="(built-in)", key=file
            )
            for key, (markup, file) in _FILES.items()
        }

    def __getitem__(self, key: str) -> Template:
        return self.by_key[key]


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
    footer = f"Run `{_literal(ctx['run_id'], 100)}` · route {_literal(ctx['route'], 100)}"
    blocks.append({"type": "context", "elements": [mrkdwn(footer)]})
    return blocks


def slack_fallback(ctx: dict[str, Any]) -> str:
    """The notification text sent with the blocks (mrkdwn)."""
    text = _literal(ctx["title"], 300)
    if ctx["status_message"] and ctx["flag"] != "TEST":
        text += f" — {_literal(ctx['status_message'], 300)}"
    return text
