"""Chat-action buttons on Slack messages, against the strict fake (which checks every button)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from relay.actions.model import Button
from relay.channels.base import Message, PermanentError
from relay.channels.slack_buttons import MAX_BLOCKS, with_buttons, without_buttons
from tests.channels.test_slack import BLOCKS, hook_channel, token_channel
from tests.fakes.slack import FakeSlack, check_blocks

RESUME = Button("resume", "Resume", "ma1:" + "r" * 22, "primary")
RERUN = Button("rerun", "Re-run", "ma1:" + "x" * 22)


def actions_blocks(blocks: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [b for b in blocks or [] if b["type"] == "actions"]


async def test_a_post_ends_with_one_actions_block_of_the_buttons(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    channel = await token_channel(fake_slack, session)
    await channel.send(Message(text="Run failed", blocks=BLOCKS, buttons=(RESUME, RERUN)))

    [posted] = fake_slack.messages("#video-alerts")
    assert posted.blocks is not None
    assert posted.blocks[:-1] == BLOCKS
    assert posted.blocks[-1] == {
        "type": "actions",
        "block_id": "mosaic_actions",
        "elements": [
            {
                "type": "button",
                "action_id": "mosaic_resume",
                "text": {"type": "plain_text", "text": "Resume"},
                "value": RESUME.value,
                "style": "primary",
            },
            {
                "type": "button",
                "action_id": "mosaic_rerun",
                "text": {"type": "plain_text", "text": "Re-run"},
                "value": RERUN.value,
            },
        ],
    }
    assert posted.text == "Run failed"


async def test_a_message_without_blocks_shows_its_text_as_a_section_above_the_buttons(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    channel = await token_channel(fake_slack, session)
    await channel.send(Message(text="*Run failed* &lt;!here&gt;", buttons=(RESUME,)))

    [posted] = fake_slack.messages("#video-alerts")
    assert posted.blocks is not None
    assert posted.blocks[0] == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "*Run failed* &lt;!here&gt;"},
    }
    assert [b["type"] for b in posted.blocks] == ["section", "actions"]


async def test_an_edit_draws_the_buttons_and_an_edit_without_them_takes_them_off(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    channel = await token_channel(fake_slack, session)
    ref = await channel.send(Message(text="1 of 5 nodes"))
    assert ref is not None
    cancel = Button("cancel", "Cancel", "ma1:" + "c" * 22, "danger")

    await channel.edit(ref, Message(text="2 of 5 nodes", blocks=BLOCKS, buttons=(cancel,)))
    [posted] = fake_slack.messages("C0VIDEO")
    [actions] = actions_blocks(posted.blocks)
    assert [e["action_id"] for e in actions["elements"]] == ["mosaic_cancel"]
    assert actions["elements"][0]["style"] == "danger"

    await channel.edit(ref, Message(text="Run completed", blocks=BLOCKS))
    assert posted.blocks == BLOCKS


async def test_a_thread_reply_carries_its_buttons_too(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    channel = await token_channel(fake_slack, session)
    ref = await channel.send(Message(text="card"))
    assert ref is not None
    await channel.reply(ref, Message(text="Run failed", buttons=(RESUME,)))

    [reply] = fake_slack.replies("C0VIDEO", ref.message_id)
    assert len(actions_blocks(reply.blocks)) == 1


async def test_a_full_message_gives_its_last_block_to_the_buttons(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    channel = await token_channel(fake_slack, session)
    full = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"line {i}"}}
        for i in range(MAX_BLOCKS)
    ]
    await channel.send(Message(text="many", blocks=full, buttons=(RESUME,)))

    [posted] = fake_slack.messages("C0VIDEO")
    assert posted.blocks is not None and len(posted.blocks) == MAX_BLOCKS
    assert posted.blocks[:-1] == full[:-1]
    assert posted.blocks[-1]["type"] == "actions"


async def test_an_incoming_webhook_draws_no_buttons(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    channel = await hook_channel(fake_slack, session)
    await channel.send(Message(text="Run failed", blocks=BLOCKS, buttons=(RESUME,)))
    await channel.send(Message(text="Run failed", buttons=(RESUME,)))

    first, second = fake_slack.messages("C0VIDEO")
    assert first.blocks == BLOCKS
    assert second.blocks is None


def test_a_long_label_is_cut_to_slacks_75_characters_and_the_blocks_pass_the_fake() -> None:
    label = "Re-run " + "é" * 100
    blocks = with_buttons("text", None, [Button("rerun", label, "ma1:v")])
    assert blocks is not None
    text = blocks[-1]["elements"][0]["text"]["text"]
    assert len(text) == 75 and text.endswith("…")
    assert check_blocks(blocks) is None


def test_no_buttons_leaves_the_blocks_as_they_are() -> None:
    assert with_buttons("text", None, []) is None
    assert with_buttons("text", BLOCKS, ()) is BLOCKS


def test_without_buttons_takes_off_only_the_relays_buttons() -> None:
    theirs = {"type": "button", "action_id": "approve", "text": {"type": "plain_text", "text": "A"}}
    drawn = with_buttons("t", BLOCKS, [RESUME, RERUN])
    assert drawn is not None
    mixed = {"type": "actions", "elements": [theirs, drawn[-1]["elements"][0]]}

    assert without_buttons(drawn) == BLOCKS
    assert without_buttons([*BLOCKS, mixed]) == [*BLOCKS, {"type": "actions", "elements": [theirs]}]
    assert without_buttons(["junk", {"type": "actions"}]) == ["junk"]


def button(**fields: Any) -> dict[str, Any]:
    element = {
        "type": "button",
        "action_id": "mosaic_resume",
        "text": {"type": "plain_text", "text": "Resume"},
        "value": "ma1:v",
    }
    return {"type": "actions", "elements": [{**element, **fields}]}


@pytest.mark.parametrize(
    "block",
    [
        button(value="v" * 2001),
        button(value=""),
        button(action_id="a" * 256),
        button(style="warning"),
        button(text={"type": "mrkdwn", "text": "*Resume*"}),
        button(text={"type": "plain_text", "text": "R" * 76}),
        button(callback_id="legacy"),
        {"type": "actions", "elements": [button()["elements"][0]] * 2},  # same action_id twice
        {"type": "actions", "elements": [{"type": "menu"}]},
        {
            "type": "actions",
            "elements": [
                {**button()["elements"][0], "action_id": f"mosaic_{i}"} for i in range(26)
            ],
        },
        {**button(), "block_id": "b" * 256},
    ],
)
def test_the_fake_refuses_buttons_slack_refuses(block: dict[str, Any]) -> None:
    problem = check_blocks([block])
    assert problem is not None and problem[0] == "invalid_blocks"


def test_the_fake_takes_buttons_at_slacks_limits() -> None:
    at_limits = button(value="v" * 2000, action_id="a" * 255, style="danger")
    many = {
        "type": "actions",
        "elements": [{**button()["elements"][0], "action_id": f"mosaic_{i}"} for i in range(25)],
    }
    assert check_blocks([at_limits, many]) is None


async def test_a_button_slack_refuses_is_a_permanent_failure(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    channel = await token_channel(fake_slack, session)
    with pytest.raises(PermanentError, match="invalid_blocks"):
        await channel.send(Message(text="x", buttons=(Button("resume", "R", "v" * 2001),)))
