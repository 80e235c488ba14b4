from __future__ import annotations

from typing import Any

from relay.channels.base import Limits
from relay.render.blocks import compile_tree, fit_blocks, mrkdwn, plain_text, render_tree
from relay.render.environment import Environments
from relay.render.kinds import REGISTRY as KINDS
from relay.render.kinds import markups_of
from relay.render.limits import ELLIPSIS

SLACK = Limits(text=40_000, header=150, section=3000, blocks=50)


def test_fit_blocks_truncates_each_kind_of_text() -> None:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": plain_text("h" * 400)},
        {"type": "section", "text": mrkdwn("&amp;" * 1000), "fields": [mrkdwn("f" * 2500)] * 12},
        {"type": "context", "elements": [mrkdwn("c")] * 12},
    ]
    header, section, context = fit_blocks(blocks, SLACK)
    assert len(header["text"]["text"]) == 150
    assert header["text"]["text"].endswith(ELLIPSIS)
    assert len(section["text"]["text"]) <= 3000
    assert section["text"]["text"].endswith("&amp;" + ELLIPSIS)
    assert len(section["fields"]) == 10
    assert all(len(f["text"]) == 2000 for f in section["fields"])
    assert len(context["elements"]) == 10


def test_fit_blocks_honours_channel_limits_and_block_count() -> None:
    limits = Limits(text=1000, header=20, section=30, blocks=3)
    blocks = [{"type": "section", "text": mrkdwn("x" * 100)} for _ in range(10)]
    fitted = fit_blocks([{"type": "header", "text": plain_text("y" * 50)}, *blocks], limits)
    assert len(fitted) == 3
    assert len(fitted[0]["text"]["text"]) == 20
    assert all(len(b["text"]["text"]) == 30 for b in fitted[1:])


def test_empty_text_drops_the_block_or_part() -> None:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": plain_text("  ")},
        {"type": "section", "text": mrkdwn(""), "fields": [mrkdwn("kept"), mrkdwn(" ")]},
        {"type": "section", "text": mrkdwn("\n")},
        {"type": "context", "elements": [mrkdwn("")]},
        {"type": "divider"},
        {"type": "image", "image_url": "https://e.com/i.png", "alt_text": "i"},
    ]
    assert fit_blocks(blocks, SLACK) == [
        {"type": "section", "fields": [mrkdwn("kept")]},
        {"type": "divider"},
        {"type": "image", "image_url": "https://e.com/i.png", "alt_text": "i"},
    ]


def test_fit_blocks_does_not_modify_its_input() -> None:
    block: dict[str, Any] = {"type": "section", "text": mrkdwn("x" * 4000)}
    fit_blocks([block], SLACK)
    assert len(block["text"]["text"]) == 4000


def test_each_text_is_rendered_for_what_slack_does_with_it() -> None:
    envs = Environments(markups_of(KINDS.values()))
    tree = compile_tree(
        [
            {"type": "header", "text": {"type": "plain_text", "text": "{{ v }}"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "*T* {{ v }}"}},
            {"type": "section", "text": {"type": "{{ kind }}", "text": "{{ v }}"}},
            {"type": "image", "image_url": "{{ url }}", "alt_text": "{{ v }}"},
        ],
        lambda markup, source, key: envs.compile(markup, source, name="t", key=key),
        "slack",
    )
    v = "*hi* <!here> https://evil.example"
    context = {"v": v, "kind": "mrkdwn", "url": "https://e.example/i.png?a=1&b=2"}
    header, section, dynamic, image = render_tree(tree, context)
    unlinked = "*hi* <!here> https:\u200b//evil.\u200bexample"
    literal = "∗hi∗ &lt;!here&gt; https:\u200b//evil.\u200bexample"
    assert header["text"]["text"] == unlinked  # plain_text: shown as is, but never linked
    assert section["text"]["text"] == f"*T* {literal}"  # mrkdwn: the template's markup stays
    assert dynamic["text"]["text"] == literal  # a type chosen at render time: mrkdwn-safe
    assert image == {"type": "image", "image_url": context["url"], "alt_text": v}
