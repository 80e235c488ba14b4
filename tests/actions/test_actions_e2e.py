"""Chat actions end to end, through real servers: webhooks in, buttons on Slack and Telegram
messages (strict fakes), presses signed like Slack and sent like Telegram, Mosaic's API (its
fake) called once, the thread told, the audit kept; refused presses change nothing."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from relay.app import RELAY, build_app
from relay.config import load_config
from relay.receiver import SIGNATURE_HEADER
from tests.conftest import SECRET, sample, wait_until
from tests.fakes.mosaic import DEFAULT_KEY, FakeMosaic
from tests.fakes.slack import FakeSlack, SlackMessage
from tests.fakes.slack_interactions import PRESSER, press, sign
from tests.fakes.telegram import DEFAULT_CHAT_ID, FakeTelegram, TelegramMessage

Client = TestClient[Any, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
SIGNING_SECRET = "slack-signing-s3cret-for-tests"
TELEGRAM_SECRET = "telegram-webhook-s3cret-for-tests"
TELEGRAM_ALLOWED = 424242


def config(slack: FakeSlack, telegram: FakeTelegram, mosaic: FakeMosaic) -> str:
    return f"""\
auth: {{secrets: ["{SECRET}"]}}
store: {{url: sqlite:///relay.db, sync: normal}}
delivery: {{backoff: {{initial: 10ms, max: 20ms}}, shutdown_grace: 2s}}
mosaic:
  api_key: {DEFAULT_KEY}
  api_url: {mosaic.url}
  reconcile: off
  stale_after: off
  agent_names: false
actions:
  slack: {{signing_secret: {SIGNING_SECRET}}}
  telegram: {{secret_token: {TELEGRAM_SECRET}}}
  allow:
    resume: {{slack_users: [{PRESSER["id"]}], telegram_users: [{TELEGRAM_ALLOWED}]}}
    cancel: {{slack_users: [{PRESSER["id"]}]}}
    rerun: {{slack_users: [{PRESSER["id"]}]}}
channels:
  team-slack:
    type: slack
    token: xoxb-test-token
    channel: "#video-alerts"
    api_url: {slack.url}/api/
  ops-telegram:
    type: telegram
    token: 123456:TEST-token
    chat_id: "{DEFAULT_CHAT_ID}"
    api_url: {telegram.url}
routes:
  - name: failed-runs
    match: {{flag: RUN_FINISHED, status: [failed, partial_complete]}}
    to: [team-slack, ops-telegram]
    actions: [resume, rerun]
  - name: cards
    match: {{flag: [RUN_STARTED, RUN_PROGRESS]}}
    to: [team-slack]
    mode: card
    actions: [cancel]
"""


@pytest.fixture
async def relay_client(
    write_config: Callable[[str], Path],
    aiohttp_client: MakeClient,
    fake_slack: FakeSlack,
    fake_telegram: FakeTelegram,
    fake_mosaic: FakeMosaic,
) -> Client:
    path = write_config(config(fake_slack, fake_telegram, fake_mosaic))
    app = build_app(load_config(path, env={}), check_channels=False)
    return await aiohttp_client(app)


async def post_event(client: Client, body: dict[str, Any]) -> None:
    answer = await client.post(
        "/webhooks/mosaic", data=json.dumps(body), headers={SIGNATURE_HEADER: SECRET}
    )
    assert answer.status == 202, await answer.text()


async def slack_message(slack: FakeSlack, with_button: str) -> SlackMessage:
    found: list[SlackMessage] = []

    def posted() -> bool:
        found[:] = [
            m
            for m in slack.messages("C0VIDEO")
            if m.thread_ts is None and with_button in json.dumps(m.blocks or [])
        ]
        return bool(found)

    await wait_until(posted)
    return found[-1]


async def slack_press(
    client: Client, slack: FakeSlack, message: SlackMessage, action: str, **options: Any
) -> int:
    user = options.pop("user", None)
    request = sign(press(slack, message, action, user=user), SIGNING_SECRET, **options)
    answer = await client.post("/actions/slack", data=request.body, headers=request.headers)
    return answer.status


def resumes(mosaic: FakeMosaic, run_id: str, what: str = "resume") -> int:
    """The calls Mosaic's fake got to ``what`` the run (every retry counts)."""
    return sum(1 for c in mosaic.calls if c.path == f"/agent_run/{run_id}/{what}")


async def test_slack_resume_once_told_in_the_thread_and_refusals_change_nothing(
    relay_client: Client,
    fake_slack: FakeSlack,
    fake_mosaic: FakeMosaic,
    caplog: pytest.LogCaptureFixture,
) -> None:
    failed = sample("run_finished_failed")
    run_id = failed["run_id"]
    fake_mosaic.add_run(run_id, agent_id=failed["agent_id"], status="failed")
    await post_event(relay_client, failed)
    message = await slack_message(fake_slack, "mosaic_resume")
    assert "mosaic_rerun" in json.dumps(message.blocks)  # Resume and Re-run on a failure

    # Forged, stale, unsigned, and an allowed signature by someone not on the list.
    with caplog.at_level(logging.WARNING):
        assert await slack_press(relay_client, fake_slack, message, "resume", forge=True) == 401
        assert await slack_press(relay_client, fake_slack, message, "resume", stale=True) == 401
        assert await slack_press(relay_client, fake_slack, message, "resume", unsigned=True) == 401
        intruder = {**PRESSER, "id": "U0INTRUDER", "username": "mallory"}
        assert await slack_press(relay_client, fake_slack, message, "resume", user=intruder) == 200
        await wait_until(
            lambda: any("not allowed" in str(r.body.get("text")) for r in fake_slack.responses)
        )
    assert resumes(fake_mosaic, run_id) == 0
    assert "slack user U0INTRUDER may not resume run" in caplog.text

    # The allowed user presses twice (a double click), and Slack retries the interaction.
    for _ in range(3):
        assert await slack_press(relay_client, fake_slack, message, "resume") == 200
    await wait_until(lambda: len(fake_slack.replies("C0VIDEO", message.ts)) == 1)
    store = relay_client.app[RELAY].store
    await wait_until(lambda: _results(store, run_id, {"done", "duplicate", "refused"}))
    assert resumes(fake_mosaic, run_id) == 1
    [reply] = fake_slack.replies("C0VIDEO", message.ts)
    assert reply.text == f"▶️ Resumed by <@{PRESSER['id']}>"
    await wait_until(
        lambda: "mosaic_resume" not in json.dumps(fake_slack.messages("C0VIDEO")[0].blocks)
    )
    results = sorted(r.result for r in await store.list_actions(run_id=run_id))
    assert results == ["done", "duplicate", "duplicate", "refused"]
    everything = caplog.text + json.dumps([r.body for r in fake_slack.responses])
    for secret in (SIGNING_SECRET, DEFAULT_KEY, TELEGRAM_SECRET):
        assert secret not in everything


async def _results(store: Any, run_id: str, wanted: set[str]) -> bool:
    return wanted <= {r.result for r in await store.list_actions(run_id=run_id)}


async def test_cancel_on_a_running_card_calls_cancel_once_and_the_card_says_so(
    relay_client: Client, fake_slack: FakeSlack, fake_mosaic: FakeMosaic
) -> None:
    started = sample("run_started_youtube")
    run_id = started["run_id"]
    fake_mosaic.add_run(run_id, agent_id=started["agent_id"], status="running")
    await post_event(relay_client, started)
    card = await slack_message(fake_slack, "mosaic_cancel")
    assert "mosaic_resume" not in json.dumps(card.blocks)  # only Cancel while running
    assert await slack_press(relay_client, fake_slack, card, "cancel") == 200
    assert await slack_press(relay_client, fake_slack, card, "cancel") == 200
    await wait_until(lambda: len(fake_slack.replies("C0VIDEO", card.ts)) == 1)
    assert resumes(fake_mosaic, run_id, "cancel") == 1
    assert fake_slack.replies("C0VIDEO", card.ts)[0].text.startswith("🛑 Cancelled by")
    assert fake_mosaic.runs[run_id].status == "cancelled"
    # The card itself no longer offers Cancel (taken off through Slack's response_url).
    await wait_until(lambda: "mosaic_cancel" not in json.dumps(card.blocks))


async def test_telegram_resume_with_the_secret_token(
    relay_client: Client, fake_telegram: FakeTelegram, fake_mosaic: FakeMosaic
) -> None:
    failed = sample("run_finished_failed")
    run_id = failed["run_id"]
    fake_mosaic.add_run(run_id, agent_id=failed["agent_id"], status="failed")
    await post_event(relay_client, failed)
    found: list[TelegramMessage] = []

    def with_keyboard() -> bool:
        found[:] = [m for m in fake_telegram.messages(DEFAULT_CHAT_ID) if m.reply_markup]
        return bool(found)

    await wait_until(with_keyboard)
    message = found[0]
    labels = [b["text"] for b in message.reply_markup["inline_keyboard"][0]]
    assert labels == ["Resume", "Re-run"]

    async def send(update: dict[str, Any], secret: str | None = TELEGRAM_SECRET) -> int:
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
        answer = await relay_client.post("/actions/telegram", json=update, headers=headers)
        return answer.status

    update = fake_telegram.press(DEFAULT_CHAT_ID, message.message_id, user_id=TELEGRAM_ALLOWED)
    assert await send(update, secret=None) == 401
    assert await send(update, secret="wrong-secret-0123456789") == 401
    intruder = fake_telegram.press(DEFAULT_CHAT_ID, message.message_id, user_id=13)
    assert await send(intruder) == 200
    assert await send(update) == 200
    assert await send(update) == 200  # Telegram delivering the same update twice
    await wait_until(
        lambda: any(m.reply_to is not None for m in fake_telegram.messages(DEFAULT_CHAT_ID))
    )
    store = relay_client.app[RELAY].store
    await wait_until(lambda: _results(store, run_id, {"done", "duplicate", "refused"}))
    assert resumes(fake_mosaic, run_id) == 1
    [reply] = [m for m in fake_telegram.messages(DEFAULT_CHAT_ID) if m.reply_to is not None]
    assert reply.content == "▶️ Resumed by @alice"
    await wait_until(lambda: not fake_telegram.messages(DEFAULT_CHAT_ID)[0].reply_markup)
    refused = fake_telegram.queries[intruder["callback_query"]["id"]]
    assert refused.answers[0]["text"] == "You are not allowed to resume runs."
