"""The Slack fake's response URLs, and interactions signed like Slack signs them."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.signature import SignatureVerifier

from tests.fakes.fixtures import clear_proxy_env
from tests.fakes.slack import RESPONSE_URL_TTL, RESPONSE_URL_USES, FakeSlack, SlackMessage
from tests.fakes.slack_interactions import PRESSER, button_of, press, sign

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BLOCKS = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "Run failed"}},
    {
        "type": "actions",
        "block_id": "mosaic_actions",
        "elements": [
            {
                "type": "button",
                "action_id": "mosaic_resume",
                "text": {"type": "plain_text", "text": "Resume"},
                "value": "ma1:resume-id",
            }
        ],
    },
]


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def rig(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[FakeSlack, Clock, aiohttp.ClientSession]]:
    clear_proxy_env(monkeypatch)
    clock = Clock()
    async with FakeSlack(clock=clock) as slack, aiohttp.ClientSession() as session:
        yield slack, clock, session


async def posted(slack: FakeSlack, session: aiohttp.ClientSession) -> SlackMessage:
    answer = await session.post(
        slack.api_url + "chat.postMessage",
        json={"channel": "C0VIDEO", "text": "Run failed", "blocks": BLOCKS},
        headers={"Authorization": "Bearer xoxb-test-token"},
    )
    assert (await answer.json())["ok"]
    return slack.messages("C0VIDEO")[-1]


async def respond(session: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    answer = await session.post(url, json=body)
    return answer.status, await answer.json()


async def test_an_ephemeral_answer_is_recorded_and_leaves_the_message_alone(
    rig: tuple[FakeSlack, Clock, aiohttp.ClientSession],
) -> None:
    slack, _, session = rig
    message = await posted(slack, session)
    url = slack.response_url("#video-alerts", message.ts)

    assert await respond(session, url, {"text": "Only you see this"}) == (200, {"ok": True})

    [response] = slack.responses
    assert response.ephemeral and not response.replaced
    assert (response.channel, response.ts) == ("C0VIDEO", message.ts)
    assert message.blocks == BLOCKS and not message.edited
    [call] = slack.calls_for("response_url")
    assert url.rpartition("/")[2] not in call.path


async def test_replace_original_replaces_the_message_and_keeps_its_history(
    rig: tuple[FakeSlack, Clock, aiohttp.ClientSession],
) -> None:
    slack, _, session = rig
    message = await posted(slack, session)
    url = slack.response_url("C0VIDEO", message.ts)

    status, _ = await respond(
        session, url, {"replace_original": True, "text": "Done", "blocks": BLOCKS[:1]}
    )

    assert status == 200
    assert (message.text, message.blocks) == ("Done", BLOCKS[:1])
    assert [v.blocks for v in message.history] == [BLOCKS]


async def test_delete_original_and_in_channel(
    rig: tuple[FakeSlack, Clock, aiohttp.ClientSession],
) -> None:
    slack, _, session = rig
    message = await posted(slack, session)
    url = slack.response_url("C0VIDEO", message.ts)

    await respond(session, url, {"response_type": "in_channel", "text": "For everyone"})
    assert [m.text for m in slack.messages("C0VIDEO")] == ["Run failed", "For everyone"]
    await respond(session, url, {"delete_original": True})
    assert [m.text for m in slack.messages("C0VIDEO")] == ["For everyone"]


@pytest.mark.parametrize(
    "body, error",
    [
        ({"replace_original": "true", "text": "x"}, "invalid_payload"),
        ({"response_type": "everyone", "text": "x"}, "invalid_response_type"),
        ({}, "no_text"),
        ({"text": "x", "blocks": [{"type": "actions", "elements": []}]}, "invalid_blocks"),
    ],
)
async def test_a_response_slack_refuses_is_refused(
    rig: tuple[FakeSlack, Clock, aiohttp.ClientSession], body: dict[str, Any], error: str
) -> None:
    slack, _, session = rig
    url = slack.response_url()
    status, answer = await respond(session, url, body)
    assert (status, answer["error"]) == (400, error)
    assert slack.responses == []


async def test_a_response_url_takes_json_only(
    rig: tuple[FakeSlack, Clock, aiohttp.ClientSession],
) -> None:
    slack, _, session = rig
    answer = await session.post(slack.response_url(), data={"text": "form"})
    assert answer.status == 400
    assert slack.responses == []


async def test_a_response_url_works_five_times_within_30_minutes(
    rig: tuple[FakeSlack, Clock, aiohttp.ClientSession],
) -> None:
    slack, clock, session = rig
    url = slack.response_url()
    for _ in range(RESPONSE_URL_USES):
        assert (await respond(session, url, {"text": "x"}))[0] == 200
    assert await respond(session, url, {"text": "x"}) == (404, {"ok": False, "error": "used_url"})

    later = slack.response_url()
    clock.now += RESPONSE_URL_TTL + 1
    assert (await respond(session, later, {"text": "x"}))[1]["error"] == "expired_url"
    unknown = slack.url + "/actions/T0FAKE/1/unknown"
    assert (await respond(session, unknown, {"text": "x"}))[1]["error"] == "expired_url"


async def test_a_response_url_names_a_message_the_fake_holds(
    rig: tuple[FakeSlack, Clock, aiohttp.ClientSession],
) -> None:
    slack, _, _ = rig
    with pytest.raises(KeyError):
        slack.response_url("C0VIDEO", "1700000000.000001")


def test_a_signed_interaction_passes_slack_sdks_verifier_and_the_others_do_not() -> None:
    payload = {"type": "block_actions", "user": PRESSER}
    verifier = SignatureVerifier(SECRET)

    signed = sign(payload, SECRET)
    assert signed.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert verifier.is_valid_request(signed.body, signed.headers)
    form = urllib.parse.parse_qs(signed.body.decode())
    assert json.loads(form["payload"][0]) == payload

    forged = sign(payload, SECRET, forge=True)
    assert not verifier.is_valid_request(forged.body, forged.headers)
    stale = sign(payload, SECRET, stale=True)
    assert not verifier.is_valid_request(stale.body, stale.headers)
    assert int(stale.headers["X-Slack-Request-Timestamp"]) < time.time() - 300
    unsigned = sign(payload, SECRET, unsigned=True)
    assert "X-Slack-Signature" not in unsigned.headers
    assert "X-Slack-Request-Timestamp" not in unsigned.headers


async def test_press_builds_the_payload_of_a_click_on_a_message_of_the_fake(
    rig: tuple[FakeSlack, Clock, aiohttp.ClientSession],
) -> None:
    slack, _, session = rig
    message = await posted(slack, session)

    payload = press(slack, message, "resume")

    assert payload["type"] == "block_actions"
    [action] = payload["actions"]
    assert (action["action_id"], action["value"]) == ("mosaic_resume", "ma1:resume-id")
    assert action["block_id"] == "mosaic_actions"
    assert payload["container"]["message_ts"] == message.ts
    assert payload["message"]["blocks"] == BLOCKS
    assert (await respond(session, payload["response_url"], {"text": "x"}))[0] == 200
    assert slack.responses[0].ts == message.ts
    with pytest.raises(KeyError):
        button_of(message, "cancel")
