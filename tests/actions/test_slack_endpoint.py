"""Slack's interactivity endpoint: signed presses reach ``Actions``; nothing else does."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from relay.actions.model import Button
from relay.actions.perform import ACTIONS_KEY
from relay.actions.slack import MAX_BODY_BYTES, SlackSurface, add_slack_route
from relay.admin import FailedAuthLimiter
from relay.bodies import BodyReads
from relay.channels.base import Message, MessageRef
from relay.config import RelayConfig
from tests.actions.stubs import Clock, RecordingActions
from tests.channels.test_slack import token_channel
from tests.fakes.slack import FakeSlack, SlackMessage
from tests.fakes.slack_interactions import PRESSER, block_actions, press, sign, signature

Client = TestClient[Any, web.Application]
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
PATH = "/actions/slack"
VALUE = "ma1:AAAAAAAAAAAAAAAAAAAAAA"
BUTTON = {
    "type": "button",
    "action_id": "mosaic_resume",
    "block_id": "mosaic_actions",
    "text": {"type": "plain_text", "text": "Resume"},
    "value": VALUE,
}
FAILURES = 3


@dataclass
class Rig:
    client: Client
    actions: RecordingActions
    clock: Clock
    config: list[RelayConfig]
    """The config serving now (replace ``config[0]`` to reload)."""
    session: aiohttp.ClientSession
    limiter: FailedAuthLimiter
    logs: list[str] = field(default_factory=list)

    def sign(self, payload: dict[str, Any], **options: Any) -> tuple[bytes, dict[str, str]]:
        signed = sign(payload, SIGNING_SECRET, clock=self.clock, **options)
        return signed.body, signed.headers

    async def post(self, body: bytes, headers: dict[str, str]) -> aiohttp.ClientResponse:
        return await self.client.post(PATH, data=body, headers=headers)


def config(**slack: Any) -> RelayConfig:
    settings = {"signing_secret": SIGNING_SECRET, "path": PATH, **slack}
    return RelayConfig.model_validate(
        {"actions": {"slack": settings}, "server": {"read_timeout": "300ms"}}
    )


@pytest.fixture(params=["app-reads-bodies", "handler-reads-body"])
async def rig(
    request: pytest.FixtureRequest, aiohttp_client: Callable[..., Awaitable[Client]]
) -> AsyncIterator[Rig]:
    """The endpoint on a real server: behind the relay's body-reading middleware (as the
    relay's app serves it), or alone (reading its body itself)."""
    actions, clock, serving = RecordingActions(), Clock(1_700_000_000.0), [config()]
    limiter = FailedAuthLimiter(failures=FAILURES, window=60, clock=clock)
    async with aiohttp.ClientSession() as session:
        reads = BodyReads(lambda: serving[0].server.read_timeout)
        middlewares = [reads.middleware] if request.param == "app-reads-bodies" else []
        app = web.Application(middlewares=middlewares)
        app[ACTIONS_KEY] = actions
        add_slack_route(
            app,
            PATH,
            config=lambda: serving[0],
            limiter=limiter,
            session=lambda: session,
            clock=clock,
        )
        client = await aiohttp_client(app)
        yield Rig(client, actions, clock, serving, session, limiter)


def payload(**overrides: Any) -> dict[str, Any]:
    return {**block_actions(BUTTON, response_url="http://127.0.0.1:9/actions/T/1/x"), **overrides}


async def test_a_signed_press_reaches_actions_and_is_answered_200_with_an_empty_body(
    rig: Rig,
) -> None:
    response = await rig.post(*rig.sign(payload()))

    assert response.status == 200
    assert await response.read() == b""
    assert "Set-Cookie" not in response.headers
    [pressed] = rig.actions.presses
    assert pressed.value == VALUE
    assert pressed.presser.source == "slack"
    assert pressed.presser.user_id == PRESSER["id"]
    assert pressed.presser.name == "alice"
    assert pressed.message == MessageRef(channel_id="C0VIDEO", message_id="1700000000.000100")
    assert isinstance(pressed.surface, SlackSurface)
    assert "127.0.0.1:9" not in repr(pressed.surface)


async def test_a_presser_without_username_is_named_by_name(rig: Rig) -> None:
    user = {"id": "W0BOB", "name": "bob"}
    await rig.post(*rig.sign(payload(user=user)))
    [pressed] = rig.actions.presses
    assert (pressed.presser.user_id, pressed.presser.name) == ("W0BOB", "bob")


@pytest.mark.parametrize(
    "options, reason",
    [
        ({"forge": True}, "bad signature"),
        ({"stale": True}, "stale timestamp"),
        ({"unsigned": True}, "one X-Slack-Signature"),
    ],
)
async def test_forged_stale_or_unsigned_presses_are_refused_with_401_and_no_press(
    rig: Rig, options: dict[str, Any], reason: str
) -> None:
    response = await rig.post(*rig.sign(payload(), **options))
    assert response.status == 401
    assert reason in (await response.json())["error"]
    assert rig.actions.presses == []


async def test_a_timestamp_from_the_future_is_stale_too(rig: Rig) -> None:
    body, headers = rig.sign(payload())
    rig.clock.now -= 301
    assert (await rig.post(body, headers)).status == 401
    rig.clock.now += 2  # 299 s ahead: within the 5 minutes
    assert (await rig.post(body, headers)).status == 200


async def test_a_press_signed_299_seconds_ago_is_taken_and_301_is_not(rig: Rig) -> None:
    body, headers = rig.sign(payload())
    rig.clock.now += 299
    assert (await rig.post(body, headers)).status == 200
    rig.clock.now += 2
    assert (await rig.post(body, headers)).status == 401
    assert len(rig.actions.presses) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"X-Slack-Request-Timestamp": None},
        {"X-Slack-Signature": None},
        {"X-Slack-Request-Timestamp": "17e8"},
        {"X-Slack-Request-Timestamp": "-1700000000"},
        {"X-Slack-Signature": "v0=" + "0" * 64},
        {"X-Slack-Signature": "v0=ünicode"},
        {"X-Slack-Signature": "v1=abc"},
    ],
)
async def test_broken_signature_headers_are_refused(
    rig: Rig, change: dict[str, str | None]
) -> None:
    body, headers = rig.sign(payload())
    for name, value in change.items():
        headers.pop(name)
        if value is not None:
            headers[name] = value
    response = await rig.post(body, headers)
    assert response.status == 401
    assert rig.actions.presses == []


async def test_a_repeated_signature_header_is_refused(rig: Rig) -> None:
    body, headers = rig.sign(payload())
    pairs = [*headers.items(), ("X-Slack-Signature", headers["X-Slack-Signature"])]
    response = await rig.client.post(PATH, data=body, headers=pairs)
    assert response.status == 401
    assert rig.actions.presses == []


async def test_a_body_changed_after_signing_is_refused(rig: Rig) -> None:
    _, headers = rig.sign(payload())
    other = json.dumps(payload(user={"id": "U0MALLORY", "username": "mallory"}))
    tampered = urllib.parse.urlencode({"payload": other}).encode()
    assert (await rig.post(tampered, headers)).status == 401
    assert rig.actions.presses == []


async def test_a_signed_body_that_is_not_a_form_gets_415(rig: Rig) -> None:
    body = json.dumps(payload()).encode()
    timestamp = str(int(rig.clock()))
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature(SIGNING_SECRET, timestamp, body),
    }
    response = await rig.post(body, headers)
    assert response.status == 415
    assert rig.actions.presses == []


@pytest.mark.parametrize(
    "body, status",
    [
        (b"payload=not-json", 400),
        (b"payload=%5B1%5D", 400),  # a list
        (b"other=1", 400),
        (b"payload=%7B%7D&payload=%7B%7D", 400),
        (b"payload=%FF", 400),
        (b"payload=%7B%22a%22%3A1%2C%22a%22%3A2%7D", 400),  # a key twice
        (b"\xff\xfe", 401),  # not UTF-8: Slack's verifier cannot even read it
    ],
)
async def test_a_signed_form_without_one_json_object_payload_is_refused(
    rig: Rig, body: bytes, status: int
) -> None:
    timestamp = str(int(rig.clock()))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature(SIGNING_SECRET, timestamp, body),
    }
    response = await rig.post(body, headers)
    assert response.status == status
    assert "error" in await response.json()
    assert rig.actions.presses == []


async def test_a_body_over_64_kib_gets_413_by_its_length_or_as_it_arrives(rig: Rig) -> None:
    big = payload(padding="x" * MAX_BODY_BYTES)
    body, headers = rig.sign(big)
    assert (await rig.post(body, headers)).status == 413

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    response = await rig.client.post(PATH, data=chunks(), headers=headers)
    assert response.status == 413
    assert rig.actions.presses == []


async def test_a_body_that_does_not_arrive_in_time_gets_408(rig: Rig) -> None:
    body, headers = rig.sign(payload())
    host, port = rig.client.server.host, rig.client.server.port
    reader, writer = await asyncio.open_connection(host, port)
    head = [f"POST {PATH} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body[:10])
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert b" 408 " in status_line
    assert rig.actions.presses == []


async def test_bad_signatures_past_the_limit_get_429_and_a_good_one_still_works(
    rig: Rig,
) -> None:
    forged = rig.sign(payload(), forge=True)
    answers = [(await rig.post(*forged)).status for _ in range(FAILURES)]
    assert answers == [401] * FAILURES
    limited = await rig.post(*forged)
    assert limited.status == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert rig.actions.presses == []

    assert (await rig.post(*rig.sign(payload()))).status == 200
    assert len(rig.actions.presses) == 1


async def test_missing_headers_do_not_count_toward_the_limit(rig: Rig) -> None:
    unsigned = rig.sign(payload(), unsigned=True)
    for _ in range(FAILURES + 2):
        assert (await rig.post(*unsigned)).status == 401


async def test_unsigned_presses_are_logged_once_a_minute(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    unsigned = rig.sign(payload(), unsigned=True)
    with caplog.at_level(logging.WARNING, logger="relay.actions.slack"):
        for _ in range(3):
            assert (await rig.post(*unsigned)).status == 401
        rig.clock.now += 61
        assert (await rig.post(*unsigned)).status == 401
    lines = [r.getMessage() for r in caplog.records if "no signature" in r.getMessage()]
    assert len(lines) == 2 and "1 such request(s)" in lines[0] and "3 such" in lines[1]
    assert rig.actions.presses == []


@pytest.mark.parametrize(
    "changes",
    [
        {"type": "view_submission"},
        {"type": "message_action"},
        {"actions": [{**BUTTON, "value": "approve"}]},
        {"actions": []},
        {"actions": "junk"},
    ],
)
async def test_other_interactions_are_answered_200_and_ignored(
    rig: Rig, changes: dict[str, Any]
) -> None:
    response = await rig.post(*rig.sign(payload(**changes)))
    assert response.status == 200
    assert rig.actions.presses == []


async def test_once_a_reload_removes_the_slack_section_the_endpoint_is_404(rig: Rig) -> None:
    rig.config[0] = RelayConfig.model_validate({})
    response = await rig.post(*rig.sign(payload()))
    assert response.status == 404
    rig.config[0] = config(path="/actions/slack-moved")
    assert (await rig.post(*rig.sign(payload()))).status == 404
    assert rig.actions.presses == []


async def test_a_reload_with_a_new_signing_secret_takes_effect_at_once(rig: Rig) -> None:
    rig.config[0] = config(signing_secret="a-new-secret-0123456789")
    assert (await rig.post(*rig.sign(payload()))).status == 401
    new = sign(payload(), "a-new-secret-0123456789", clock=rig.clock)
    assert (await rig.post(new.body, new.headers)).status == 200


async def test_an_empty_signing_secret_refuses_every_press(rig: Rig) -> None:
    rig.config[0] = config(signing_secret="")
    signed = sign(payload(), "", clock=rig.clock)
    assert (await rig.post(signed.body, signed.headers)).status == 401
    assert rig.actions.presses == []


async def test_logs_never_show_the_response_url_or_the_secret(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await rig.post(*rig.sign(payload()))
    await rig.post(*rig.sign(payload(), forge=True))
    await rig.post(*rig.sign(payload(type="view_submission")))
    await rig.actions.presses[0].surface.answer("hello")  # nobody listens on port 9
    text = caplog.text
    assert "refused: bad signature" in text
    assert "cannot answer on Slack" in text
    assert "127.0.0.1:9" not in text and "/actions/T/1/x" not in text
    assert SIGNING_SECRET not in text


# --- the surface, against the fake Slack -----------------------------------------------------


async def posted_with_buttons(slack: FakeSlack, session: aiohttp.ClientSession) -> SlackMessage:
    channel = await token_channel(slack, session)
    buttons = (Button("resume", "Resume", VALUE, "primary"), Button("rerun", "Re-run", "ma1:b"))
    await channel.send(Message(text="Run failed", buttons=buttons))
    [message] = slack.messages("C0VIDEO")
    return message


async def test_a_press_on_a_posted_message_answers_and_takes_the_buttons_off(
    rig: Rig, fake_slack: FakeSlack
) -> None:
    message = await posted_with_buttons(fake_slack, rig.session)
    response = await rig.post(*rig.sign(press(fake_slack, message, "rerun")))
    assert response.status == 200
    [pressed] = rig.actions.presses
    assert pressed.value == "ma1:b"
    assert pressed.message == MessageRef("C0VIDEO", message.ts)

    await pressed.surface.answer("Re-run started by you")
    await pressed.surface.remove_buttons()

    answer, removal = fake_slack.responses
    assert answer.ephemeral and answer.body == {
        "response_type": "ephemeral",
        "replace_original": False,
        "text": "Re-run started by you",
    }
    assert removal.replaced and (removal.channel, removal.ts) == ("C0VIDEO", message.ts)
    assert removal.body["text"] == "Run failed"
    assert message.blocks == [{"type": "section", "text": {"type": "mrkdwn", "text": "Run failed"}}]
    assert [v.blocks and v.blocks[-1]["type"] for v in message.history] == ["actions"]


async def test_a_failing_response_url_is_logged_and_not_raised(
    rig: Rig, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    message = await posted_with_buttons(fake_slack, rig.session)
    await rig.post(*rig.sign(press(fake_slack, message, "resume")))
    [pressed] = rig.actions.presses
    fake_slack.fail_next(status=500, method="response_url")

    await pressed.surface.remove_buttons()

    assert "cannot take the buttons off on Slack: its response_url answered HTTP 500" in caplog.text
    assert fake_slack.url not in caplog.text
    assert actions_left(message)


def actions_left(message: SlackMessage) -> bool:
    return any(block["type"] == "actions" for block in message.blocks or [])


def test_importing_the_endpoint_loads_no_slack_library() -> None:
    """The app imports the endpoint whatever the config; slack-sdk comes with the first press."""
    probe = "import sys, relay.actions.slack; print('slack_sdk' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
