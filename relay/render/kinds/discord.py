"""The ``discord`` kind: Discord markdown content and embeds (``Message.text``, ``Message.blocks``).

Every ``{{ value }}`` is made literal (``discord_literal``). The built-in message is a one-line
content (the title, what a notification shows) and one embed: the agent as author, the YouTube
title or the run as title linked to the run (``run_url``), the colour of the status, the reason
and errors as description, facts as fields, the event's image as thumbnail, route and run in the
footer. A template's ``discord`` part (else its ``text``) becomes the content, without embeds.
Author names and footers are not markdown in Discord: they get plain one-line text. Every piece
is cut to Discord's limits, and the embeds together to 6,000 characters.
"""

from __future__ import annotations

from typing import Any, ClassVar

from jinja2 import Template

from relay.channels.base import Limits
from relay.render.environment import duration
from relay.render.kinds.base import Compile, Draft, Parts, RenderKind, Reply, reply_lines
from relay.render.kinds.discord_text import (
    DiscordText,
    discord_link,
    discord_literal,
    truncate_discord,
)
from relay.render.limits import measure, oneline, safe_url, truncate_plain
from relay.render.markup import PLAIN, OutputMarkup
from relay.render.settings import TemplateSettings

__all__ = ["DISCORD", "DiscordKind", "discord_embed", "fit_embeds"]

DISCORD = OutputMarkup(
    "discord",
    link=discord_link,
    escape=discord_literal,
    filters={"discord_literal": discord_literal, "discord_link": discord_link},
    escaped=DiscordText,
    truncate=lambda text, length: DiscordText(truncate_discord(text, length)),
)
"""Discord markdown: every value literal."""

CONTENT = 2000
TITLE = 256
DESCRIPTION = 4096
FIELD_NAME = 256
FIELD_VALUE = 1024
FOOTER = 2048
AUTHOR = 256
MAX_FIELDS = 25
MAX_EMBEDS = 10
EMBEDS_TOTAL = 6000
"""Discord's limits: characters per part, and across all the embeds of one message."""
MAX_OUTPUTS = 10
MAX_ERRORS = 5
RUN_LINK_LABEL = "Open in Mosaic"


class DiscordKind(RenderKind):
    name: ClassVar[str] = "discord"
    text_markup: ClassVar[OutputMarkup] = DISCORD
    markups: ClassVar[tuple[OutputMarkup, ...]] = (PLAIN,)

    def compile(self, settings: TemplateSettings, compile_part: Compile) -> Template | None:
        if settings.discord is None:
            return None
        return compile_part(DISCORD.name, settings.discord, "discord")

    def render(self, draft: Draft) -> Parts:
        limit = min(draft.limits.text, CONTENT)
        if draft.own is not None:
            content: str | None = draft.rendered(draft.own)
        else:
            content = draft.text(DISCORD.name)
        if content is not None:
            return Parts(text=truncate_discord(content, limit), subject=draft.subject())
        embeds = fit_embeds([discord_embed(draft.ctx)], draft.limits)
        title = discord_literal(oneline(draft.ctx["title"]))
        return Parts(
            text=truncate_discord(title, limit), blocks=embeds or None, subject=draft.subject()
        )

    def render_digest(self, draft: Draft) -> Parts:
        """A digest is content only: the template's ``discord`` part, its ``text``, else the
        built-in digest text (values literal, as everywhere in Discord markup)."""
        if draft.own is not None:
            text = draft.rendered(draft.own)
        else:
            own = draft.text(DISCORD.name)
            text = own if own is not None else draft.builtin("text")
        limit = min(draft.limits.text, CONTENT)
        return Parts(text=truncate_discord(text, limit), subject=draft.subject())

    def render_reply(self, reply: Reply, limits: Limits) -> Parts:
        icon, title, detail = reply_lines(reply)
        text = f"{icon} **{discord_literal(title)}**"
        if detail:
            text += f"\n{discord_literal(detail)}"
        if reply.url:
            text += f"\n{discord_link(reply.url, 'Download')}"
        return Parts(text=truncate_discord(text, min(limits.text, CONTENT)))


def _literal(value: Any, limit: int) -> str:
    return discord_literal(truncate_plain(oneline(value), limit))


def _field(name: str, value: str, inline: bool = True) -> dict[str, Any]:
    return {"name": name, "value": value, "inline": inline}


def _description(ctx: dict[str, Any]) -> str:
    lines: list[str] = []
    if ctx["flag"] == "TEST":
        return "Test event from Mosaic: the relay received it and this channel works."
    for note in ("stale_note", "source_note"):
        if ctx[note]:
            lines.append(f"*{_literal(ctx[note], 300)}*")
    if ctx["status_message"]:
        lines.append(f"**{ctx['reason_label']}:** {_literal(ctx['status_message'], 1000)}")
    messages = ctx["error_messages"]
    lines += [f"• {_literal(message, 300)}" for message in messages[:MAX_ERRORS]]
    hidden = ctx["errors_more"] + max(len(messages) - MAX_ERRORS, 0)
    if hidden:
        lines.append(f"… and {hidden:,} more")
    if ctx["needs_credits"]:
        lines.append("💳 **Out of credits:** add credits in Mosaic, then run it again.")
    return "\n".join(lines)


def _outputs(ctx: dict[str, Any]) -> str:
    lines: list[str] = []
    key = "outputs" if ctx["outputs"] else "node_outputs"
    for output in ctx[key][:MAX_OUTPUTS]:
        if safe_url(output.get("video_url")):
            lines.append(f"🎬 {discord_link(output['video_url'], f'Output {len(lines) + 1}')}")
    hidden = ctx[f"{key}_more"] + max(len(ctx[key]) - MAX_OUTPUTS, 0)
    if hidden:
        lines.append(f"… and {hidden:,} more outputs")
    return "\n".join(lines)


def _fields(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    trigger = ctx["trigger"]
    fields = [
        _field("Status", _literal(ctx["status_word"], 100)),
        _field("Trigger", _literal(ctx["trigger_label"], 100)),
    ]
    progress = ctx["progress"]
    if progress["total"]:
        nodes = progress["summary"]
        if not ctx["is_terminal"]:
            nodes += f"\n{progress['bar']}"
        fields.append(_field("Progress", nodes))
    if ctx["elapsed"] and ctx["flag"] != "RUN_STARTED":
        fields.append(_field("Elapsed", duration(ctx["elapsed"])))
    if trigger["type"] == "youtube" and safe_url(trigger["video_url"]):
        fields.append(_field("YouTube", discord_link(trigger["video_url"], "Watch"), False))
    outputs = _outputs(ctx)
    if outputs:
        fields.append(_field("Outputs", outputs, False))
    return fields


def discord_embed(ctx: dict[str, Any]) -> dict[str, Any]:
    """The built-in embed of one delivery (before ``fit_embeds``)."""
    trigger = ctx["trigger"]
    if trigger["type"] == "youtube" and trigger["video_title"]:
        title = f"▶️ {_literal(trigger['video_title'], 200)}"
    else:
        title = f"{ctx['emoji']} {_literal(ctx['status_word'], 100)} · run {ctx['run_short']}"
    embed: dict[str, Any] = {
        "type": "rich",
        "title": title,
        "color": int(ctx["color"].lstrip("#"), 16),
        "author": {"name": oneline(ctx["agent_name"])},
    }
    if ctx["run_url"]:
        embed["url"] = ctx["run_url"]
    description = _description(ctx)
    if description:
        embed["description"] = description
    if ctx["flag"] != "TEST":
        embed["fields"] = _fields(ctx)
    if ctx["image_url"]:
        embed["thumbnail"] = {"url": ctx["image_url"]}
    footer = f"Run {oneline(ctx['run_id'])} · route {oneline(ctx['route'])}"
    embed["footer"] = {"text": footer}
    return embed


def _text(holder: Any, key: str) -> str:
    value = holder.get(key) if isinstance(holder, dict) else None
    return value if isinstance(value, str) else ""


class _Budget:
    """What is left of the 6,000 characters the embeds of one message may hold together."""

    def __init__(self) -> None:
        self.left = EMBEDS_TOTAL

    def take(self, text: str, limit: int, *, markdown: bool = True) -> str:
        cut = truncate_discord if markdown else truncate_plain
        text = cut(text, min(limit, self.left)) if self.left > 0 else ""
        self.left -= measure(text)
        return text


def _fit_embed(embed: dict[str, Any], budget: _Budget, limits: Limits) -> dict[str, Any] | None:
    fitted = dict(embed)
    title = min(limits.header or TITLE, TITLE)
    description = min(limits.section or DESCRIPTION, DESCRIPTION)
    for key, limit in (("title", title), ("description", description)):
        if key not in embed:
            continue
        text = budget.take(_text(embed, key), limit)
        if text.strip():
            fitted[key] = text
        else:
            fitted.pop(key)
    for key, limit in (("author", AUTHOR), ("footer", FOOTER)):
        field = "name" if key == "author" else "text"
        if key in embed:
            text = budget.take(oneline(_text(embed[key], field)), limit, markdown=False)
            if text.strip():
                fitted[key] = {**embed[key], field: text}
            else:
                fitted.pop(key)
    fields: list[dict[str, Any]] = []
    for item in embed.get("fields") or []:
        if len(fields) == MAX_FIELDS or budget.left < 2:
            break
        name = budget.take(_text(item, "name"), FIELD_NAME)
        value = budget.take(_text(item, "value"), FIELD_VALUE)
        if name.strip() and value.strip():
            fields.append({**item, "name": name, "value": value})
    if fields:
        fitted["fields"] = fields
    else:
        fitted.pop("fields", None)
    has_text = any(key in fitted for key in ("title", "description", "fields", "author"))
    return fitted if has_text or "footer" in fitted or "thumbnail" in fitted else None


def fit_embeds(embeds: list[dict[str, Any]], limits: Limits) -> list[dict[str, Any]]:
    """Embeds within Discord's limits: each part cut with '…', 25 fields, 10 embeds, and 6,000
    characters across them (the first parts of the first embeds are kept first)."""
    budget = _Budget()
    fitted = [_fit_embed(embed, budget, limits) for embed in embeds[: limits.blocks or MAX_EMBEDS]]
    return [embed for embed in fitted if embed is not None][:MAX_EMBEDS]
