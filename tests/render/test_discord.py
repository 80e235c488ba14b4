"""The ``discord`` kind: escaping of hostile text, embeds, limits, templates and card replies."""

from __future__ import annotations

import re
from typing import Any

import pytest

from relay.channels.base import Limits
from relay.render import Reply, render_reply
from relay.render.kinds.discord_text import discord_link, discord_literal, truncate_discord
from relay.render.limits import measure
from tests.fakes.discord import hazards
from tests.render.helpers import discord_texts, render, renderer, sample
from tests.render.test_hostile import HOSTILE, check_embeds, hostile_event, literal

LIMITS = Limits(text=2000, header=256, section=4096, blocks=10)
DISCORD_HOSTILE = [
    *HOSTILE,
    "@everyone **bold** [click](https://evil.example) <@123>",
    "# Heading\n## two\n-# subtext\n- item\n1. first\n> quote\n>>> all",
    "||spoiler|| <t:1700000000:R> <:emoji:123> <a:anim:1> <@&987> <#456> \\*escaped\\*",
    "[https://real.example](https://evil.example) <https://x.example>",
]


def event_pieces(message: Any) -> list[str]:
    """The content and the embed parts that carry event text, without the kind's own bold
    labels (``**Why it failed:**``)."""
    [embed] = message.blocks
    description = re.sub(r"(?m)^\*\*[A-Za-z ]+:\*\* ", "", embed.get("description", ""))
    fields = [f["value"] for f in embed["fields"] if f["name"] in ("Status", "Trigger")]
    return [message.text, embed["title"], description, *fields]


@pytest.mark.parametrize("text", DISCORD_HOSTILE, ids=lambda t: t[:20])
def test_hostile_text_is_shown_as_typed_and_never_formats_links_or_mentions(text: str) -> None:
    message = render(renderer(), "discord", hostile_event(text), limits=LIMITS)
    assert message.blocks is not None
    check_embeds(message.blocks)
    for piece in event_pieces(message):
        assert hazards(piece) == [], piece
    assert literal(text).replace("\\", "") in " ".join(
        " ".join(discord_texts(message)).replace("\\", "").split()
    )


def test_the_built_in_message_is_a_title_line_and_one_embed() -> None:
    r = renderer()
    r_url = type(r)({}, {}, run_url="https://mosaic.example/runs/{run_id}")
    message = render(r_url, "discord", sample("run_finished_failed"), limits=LIMITS)
    assert message.text.startswith("❌ Failed:") and "\n" not in message.text
    [embed] = message.blocks or []
    assert embed["type"] == "rich" and embed["color"] == 0xE01E5A
    assert embed["url"].startswith("https://mosaic.example/runs/")
    assert "Render node ran out of credits" in embed["description"]
    assert embed["footer"]["text"].startswith("Run ")
    test = render(r, "discord", sample("test"), limits=LIMITS)
    [test_embed] = test.blocks or []
    assert "fields" not in test_embed and "Test event" in test_embed["description"]


def test_tight_limits_cut_every_part_and_the_embeds_total() -> None:
    payload = hostile_event("W" * 10_000)
    payload["outputs"] = [{"video_url": f"https://cdn.example/{'a' * 1500}/{i}"} for i in range(20)]
    message = render(renderer(), "discord", payload, limits=LIMITS)
    [embed] = message.blocks or []
    check_embeds([embed])
    assert embed["title"].endswith("…") and len(embed["title"]) <= 256
    tight = render(
        renderer(), "discord", payload, limits=Limits(text=50, header=20, section=30, blocks=1)
    )
    [small] = tight.blocks or []
    assert measure(tight.text) <= 50 and measure(small["title"]) <= 20
    assert measure(small["description"]) <= 30


def test_text_and_discord_template_parts_become_the_content_without_embeds() -> None:
    r = renderer(
        {
            "text": {"text": "Video: {{ trigger.video_title }}"},
            "own": {"text": "x", "discord": "**New:** {{ trigger.video_title }}"},
        }
    )
    payload = hostile_event("@everyone *hi*")
    text = render(r, "discord", payload, "text", limits=LIMITS)
    assert (text.text, text.blocks) == ("Video: @\u200beveryone \\*hi\\*", None)
    own = render(r, "discord", payload, "own", limits=LIMITS)
    assert own.text == "**New:** @\u200beveryone \\*hi\\*"
    linked = render(
        renderer({"l": {"discord": "{{ trigger.video_url | link(trigger.video_title) }}"}}),
        "discord",
        hostile_event("[x](https://evil.example)"),
        "l",
        limits=LIMITS,
    )
    assert linked.text.startswith("[\\[x\\](https://evil.example)](https://www.youtube.com/")


def test_a_card_reply_is_content_with_its_text_escaped() -> None:
    reply = Reply("node-7", "node-7 **failed** @here", "GPU <@1> out", "https://x.example/v", True)
    message = render_reply("discord", reply, render(renderer(), "discord", sample("test")), LIMITS)
    assert message.text == (
        "❌ **node-7 \\*\\*failed\\*\\* @\u200bhere**\nGPU \\<@1\\> out\n"
        "[Download](https://x.example/v)"
    )


def test_escaping_and_links() -> None:
    assert discord_literal("a_b https://y.example/a_b*c") == "a\\_b https://y.example/a_b\\*c"
    assert discord_literal("2. x\n  #h") == "2\\. x\n  \\#h"
    assert discord_link("javascript:alert(1)", "x") == "x"
    assert discord_link("https://e.example/(a)", "[t]") == "[\\[t\\]](https://e.example/%28a%29)"


def test_truncation_never_splits_an_escape_or_a_link() -> None:
    text = discord_literal("*" * 10)
    assert truncate_discord(text, 6) == "\\*\\*…"
    link = discord_link("https://e.example/long", "label")
    assert truncate_discord("ab " + link, 10) == "ab…"
    assert truncate_discord("short", 10) == "short"
