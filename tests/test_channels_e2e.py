"""Every sample through the relay to every channel type (Slack Web API and webhook, Telegram,
email, webhook), against the local fakes and a real SMTP server: each arrives with its content."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.conftest import sample, sample_names
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import DEFAULT_CHAT_ID, FakeTelegram
from tests.relay_rig import running_rig

RUN_SAMPLES = [name for name in sample_names() if name != "test"]

EXPECTED = {
    "run_started_youtube": ["Started", "Never Gonna Give You Up", "7f8d9c2b"],
    "run_progress": ["Running", "4/7", "7f8d9c2b"],
    "run_finished_completed_youtube": [
        "Finished",
        "Never Gonna Give You Up",
        "https://storage.example.com/renders/7ba7b810/output.mp4",
    ],
    "run_finished_failed": ["Failed", "Render node ran out of credits", "6/8", "c2d9e8f7"],
    "run_finished_partial_schedule": [
        "Partially complete",
        "1 of 3 renders failed",
        "https://storage.example.com/renders/aa12/square.mp4",
    ],
    "run_cancelled_manual": ["Cancelled", "Cancelled by user", "99999999"],
}


def _run_of(name: str) -> str:
    return str(sample(name)["run_id"])


def _telegram_text(message: Any) -> str:
    """The text a reader sees, plus the targets of its links."""
    links = " ".join(entity.get("url", "") for entity in message.entities)
    return f"{message.content or ''} {links}"


def _slack_text(message: Any) -> str:
    return message.text + json.dumps(message.blocks or [], ensure_ascii=False)


async def test_every_sample_reaches_every_channel_with_its_content(
    tmp_path: Path,
    fake_slack: FakeSlack,
    fake_telegram: FakeTelegram,
    aiohttp_client: Callable[..., Awaitable[Any]],
) -> None:
    assert set(EXPECTED) == set(RUN_SAMPLES)
    async with running_rig(tmp_path, fake_slack, fake_telegram, aiohttp_client) as rig:
        for name in RUN_SAMPLES:
            assert await rig.post(sample(name)) == 202
        states = await rig.settle()
        assert all(state == "sent" for (_, state) in states), states

        slack_api = [m for m in fake_slack.messages("#video-alerts") if not m.via_webhook]
        slack_hook = [m for m in fake_slack.messages("#video-alerts") if m.via_webhook]
        telegram = fake_telegram.messages(DEFAULT_CHAT_ID)
        mails = rig.smtp.mails
        hooks = [json.loads(body) for _, body in rig.endpoint.requests]
        for found in (slack_api, slack_hook, telegram, mails, hooks):
            assert len(found) == len(RUN_SAMPLES)

        for name, needles in EXPECTED.items():
            # Runs share ids across samples: pick each channel's message by content.
            slack_one = [m for m in slack_api if all(n in _slack_text(m) for n in needles)]
            hook_one = [m for m in slack_hook if all(n in _slack_text(m) for n in needles)]
            tg_one = [m for m in telegram if all(n in _telegram_text(m) for n in needles)]
            mail_one = [
                m
                for m in mails
                if all(
                    n in str(m["Subject"]) + m.get_body(("plain",)).get_content()  # type: ignore[union-attr]
                    for n in needles
                )
            ]
            hook_json = [h for h in hooks if all(n in h["text"] for n in needles)]
            assert slack_one and hook_one and tg_one and mail_one and hook_json, name

        for mail in mails:
            assert mail["Auto-Submitted"] == "auto-generated"
            assert mail.get_body(("html",)) is not None
        youtube = next(m for m in telegram if "Never Gonna Give You Up" in (m.content or ""))
        assert any(
            e.get("url") == "https://www.youtube.com/watch?v=dQw4w9WgXcQ" for e in youtube.entities
        )
        assert {h["run_id"] for h in hooks} == {_run_of(n) for n in RUN_SAMPLES}
