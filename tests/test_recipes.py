"""The ready-made configs in config/: each validates, routes what it says, and keeps secrets out."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient

from relay.app import RELAY, build_app
from relay.config import ConfigError, load_config
from relay.dryrun import route_test
from relay.receiver import SIGNATURE_HEADER
from relay.runtime import Runtime
from tests.conftest import SAMPLES, sample, sample_names, wait_until
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import FakeTelegram

Client = TestClient[Any, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
CONFIG = Path(__file__).resolve().parent.parent / "config"
RECIPES = sorted(CONFIG.glob("*.yaml"))
ENV = {
    "MOSAIC_WEBHOOK_SECRET": "whsec-for-tests",
    "SLACK_BOT_TOKEN": "xoxb-test-token",
    "TELEGRAM_BOT_TOKEN": "123456:TEST-token",
    "SMTP_PASSWORD": "smtp-password",
    "RELAY_ADMIN_TOKEN": "admin-token",
    "DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/1234/discord-token",
    "NTFY_URL": "ntfys://ntfy.example.com/video-alerts",
    "MATRIX_URL": "matrixs://relay:matrix-pass@matrix.example.org/#alerts",
}
SECRET_KEYS = ("token", "password", "webhook_url", "secret", "url")
ENV_REFERENCE = re.compile(r"\$\{[A-Z][A-Z0-9_]*\}")

# Which channels (and routes) each sample reaches, per recipe; samples not listed reach none.
ROUTING: dict[str, dict[str, list[tuple[str, str]]]] = {
    "failed-runs-to-slack": {
        "run_finished_failed": [("failed-runs", "team-slack")],
        "run_finished_partial_schedule": [("failed-runs", "team-slack")],
        "test": [("endpoint-tests", "team-slack")],
    },
    "youtube-to-telegram": {
        "run_finished_completed_youtube": [("youtube-announcements", "announcements")],
        "test": [("endpoint-tests", "announcements")],
    },
    "agent-to-email": {  # the Shorts cutter's events, progress excluded
        "run_cancelled_manual": [("shorts-cutter", "leads-email")],
        "run_finished_completed_youtube": [("shorts-cutter", "leads-email")],
        "run_started_youtube": [("shorts-cutter", "leads-email")],
        "test": [("endpoint-tests", "leads-email")],
    },
    "progress-cards": {
        **{name: [("progress-cards", "team-slack")] for name in sample_names() if name != "test"},
        "test": [("endpoint-tests", "team-slack")],
    },
    "digests-and-quiet-hours": {
        **{
            name: [
                ("failed-runs", "team-slack"),
                ("failed-runs", "phones#1"),
                ("failed-runs", "phones#2"),
            ]
            for name in ("run_finished_failed", "run_finished_partial_schedule")
        },
        "run_finished_completed_youtube": [
            ("daily-youtube", "team-slack"),
            ("daily-youtube", "creators-discord"),
        ],
        "test": [("endpoint-tests", "team-slack")],
    },
    "docker": {
        **{
            name: [("everything", "stdout"), ("everything", "archive")]
            for name in sample_names()
            if name not in ("run_progress", "test")
        },
        "test": [("endpoint-tests", "stdout")],
    },
}


def test_every_recipe_answers_mosaics_endpoint_test() -> None:
    """Mosaic's "Test" button must show up wherever a recipe sends its alerts."""
    assert all(routes.get("test") for routes in ROUTING.values())


def recipe(name: str) -> Path:
    return CONFIG / f"{name}.yaml"


def test_the_promised_recipes_are_there() -> None:
    assert {path.stem for path in RECIPES} == set(ROUTING)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_a_recipe_loads_with_its_environment(path: Path) -> None:
    loaded = load_config(path, env=ENV)
    assert loaded.unset_vars == ()
    Runtime.build(loaded)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_a_recipe_takes_every_secret_from_the_environment(path: Path) -> None:
    raw = yaml.safe_load(path.read_text())
    assert raw["auth"]["secrets"] == ["${MOSAIC_WEBHOOK_SECRET}"]
    for name, channel in raw["channels"].items():
        for key in SECRET_KEYS:
            if key in channel:
                assert ENV_REFERENCE.fullmatch(channel[key]), f"channels.{name}.{key}"
        for index, url in enumerate(channel.get("urls", [])):  # Apprise: each URL is a secret
            assert ENV_REFERENCE.fullmatch(url), f"channels.{name}.urls[{index}]"
    without_secret = {k: v for k, v in ENV.items() if k != "MOSAIC_WEBHOOK_SECRET"}
    with pytest.raises(ConfigError, match="MOSAIC_WEBHOOK_SECRET is not set"):
        load_config(path, env=without_secret)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
@pytest.mark.parametrize("event", sample_names())
def test_a_recipe_routes_and_renders_what_it_says(path: Path, event: str) -> None:
    runtime = Runtime.build(load_config(path, env=ENV))
    result = route_test(runtime, (SAMPLES / f"{event}.json").read_bytes())
    reached = [(d["route"], d["channel"]) for d in result["deliveries"]]
    assert reached == ROUTING[path.stem].get(event, [])
    for delivery in result["deliveries"]:
        assert "error" not in delivery and delivery["text"].strip()
        if path.stem == "progress-cards" and event != "test":
            assert delivery["mode"] == "card"


def test_the_email_recipe_has_its_own_subject() -> None:
    runtime = Runtime.build(load_config(recipe("agent-to-email"), env=ENV))
    raw = (SAMPLES / "run_finished_completed_youtube.json").read_bytes()
    (delivery,) = route_test(runtime, raw)["deliveries"]
    assert delivery["subject"] == "[Shorts cutter] Finished: run 7f8d9c2b"


def test_an_email_channels_subject_template_is_used(tmp_path: Path) -> None:
    text = (
        recipe("agent-to-email")
        .read_text()
        .replace("    template: owner-mail", '    subject: "Channel subject {{ run_short }}"')
    )
    path = tmp_path / "relay.yaml"
    path.write_text(text)
    runtime = Runtime.build(load_config(path, env=ENV))
    raw = (SAMPLES / "run_finished_completed_youtube.json").read_bytes()
    (delivery,) = route_test(runtime, raw)["deliveries"]
    assert delivery["subject"] == "Channel subject 7f8d9c2b"


def test_the_telegram_announcement_escapes_a_hostile_title() -> None:
    runtime = Runtime.build(load_config(recipe("youtube-to-telegram"), env=ENV))
    event = sample("run_finished_completed_youtube")
    event["triggered_by"]["video_title"] = '<a href="https://evil">x</a> & "q"'
    (delivery,) = route_test(runtime, json.dumps(event).encode())["deliveries"]
    assert 'https://evil">' not in delivery["text"]
    assert (
        "“&lt;a href=&#34;https://evil&#34;&gt;x&lt;/a&gt; &amp; &#34;q&#34;”" in delivery["text"]
    )
    assert (
        '<a href="https://www.youtube.com/watch?v=dQw4w9WgXcQ">Source video</a>'
        in (delivery["text"])
    )


# --- delivered for real, to the local Slack and Telegram fakes ------------------------------------


def with_api_url(path: Path, token_line: str, api_url: str, tmp_path: Path) -> Path:
    text = path.read_text()
    assert token_line in text
    copy = tmp_path / path.name
    copy.write_text(text.replace(token_line, f"{token_line}\n    api_url: {api_url}"))
    return copy


async def post_samples(client: Client, names: list[str]) -> None:
    for name in names:
        answer = await client.post(
            "/webhooks/mosaic",
            data=json.dumps(sample(name)),
            headers={SIGNATURE_HEADER: ENV["MOSAIC_WEBHOOK_SECRET"]},
        )
        assert answer.status in (200, 202)


async def test_failed_runs_reach_slack(
    fake_slack: FakeSlack, aiohttp_client: MakeClient, tmp_path: Path
) -> None:
    path = with_api_url(
        recipe("failed-runs-to-slack"),
        "    token: ${SLACK_BOT_TOKEN}",
        fake_slack.api_url,
        tmp_path,
    )
    client = await aiohttp_client(build_app(load_config(path, env=ENV)))
    await post_samples(client, ["run_finished_completed_youtube", "run_finished_failed"])
    store = client.app[RELAY].store

    async def only_the_failure_sent() -> bool:  # the completed run made no job at all
        rows = await store.status()
        return [(row.channel, row.state, row.count) for row in rows] == [("team-slack", "sent", 1)]

    await wait_until(only_the_failure_sent)
    (posted,) = fake_slack.messages("#video-alerts")
    assert "Failed" in posted.text and "Render node ran out of credits" in posted.text


async def test_youtube_announcements_reach_telegram(
    fake_telegram: FakeTelegram, aiohttp_client: MakeClient, tmp_path: Path
) -> None:
    path = with_api_url(
        recipe("youtube-to-telegram"),
        "    token: ${TELEGRAM_BOT_TOKEN}",
        fake_telegram.url,
        tmp_path,
    )
    client = await aiohttp_client(build_app(load_config(path, env=ENV)))
    await post_samples(client, ["run_finished_failed", "run_finished_completed_youtube"])
    chat = -1001234567890
    await wait_until(lambda: len(fake_telegram.messages(chat)) == 1)
    (announced,) = fake_telegram.messages(chat)
    shown = announced.caption or announced.text  # a photo with a caption when there is a thumbnail
    assert shown is not None
    assert "New from “Never Gonna Give You Up”" in shown and "Render 1" in shown
