"""The actions: section and routes' buttons, as the config loads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.actions.settings import ActionSettings
from relay.config import ConfigError, load_config

BASE = """\
auth: {allow_unsigned: true}
mosaic: {api_key: mk_test}
actions:
  slack: {signing_secret: s}
  allow: {resume: {slack_users: [U1], telegram_users: 42}}
channels:
  console: {type: console}
  team: {type: slack, token: xoxb-1, channel: "#a"}
  hook: {type: slack, webhook_url: "https://hooks.slack.com/services/T/B/x"}
routes:
"""


def load(tmp_path: Path, routes: str, base: str = BASE) -> list[str]:
    path = tmp_path / "relay.yaml"
    path.write_text(base + routes)
    loaded = load_config(path, env={})
    found = [warning.format("relay.yaml") for warning in loaded.warnings]
    return [line for line in found if "not used by any route" not in line]


def test_who_may_press_is_exact_ids_per_platform() -> None:
    allow = ActionSettings.model_validate(
        {"allow": {"resume": {"slack_users": "U1", "telegram_users": [42]}}}
    )
    assert allow.allows("resume", "slack", "U1")
    assert not allow.allows("resume", "slack", "u1")
    assert allow.allows("resume", "telegram", "42")
    assert not allow.allows("resume", "telegram", "U1")
    assert not allow.allows("cancel", "slack", "U1")  # nobody by default


def test_buttons_nobody_may_press_or_nobody_sees_are_warnings(tmp_path: Path) -> None:
    assert load(tmp_path, "  - {to: [team], actions: [resume]}\n") == []
    assert load(tmp_path, "  - {to: [team], actions: [resume, cancel]}\n") == [
        "relay.yaml:11: warning: routes[0].actions: nobody may press cancel: "
        "actions.allow.cancel is empty"
    ]
    assert load(tmp_path, "  - {to: [console, hook], actions: resume}\n") == [
        "relay.yaml:11: warning: routes[0].actions: no channel of this route shows buttons "
        "(Slack with a token, Telegram)"
    ]


def test_buttons_need_somewhere_for_presses_and_the_api_key(tmp_path: Path) -> None:
    bare = "auth: {allow_unsigned: true}\nchannels: {team: {type: console}}\nroutes:\n"
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, "  - {to: [team], actions: [resume, pause]}\n", base=bare)
    text = str(caught.value)
    assert "buttons need actions.slack or actions.telegram" in text
    assert "buttons need mosaic.api_key" in text
    assert "routes[0].actions[1]: Input should be 'resume', 'cancel' or 'rerun'" in text


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"allow": {"pause": {}}}, "unknown action 'pause'"),
        ({"telegram": {"secret_token": "short"}}, "16 to 256 characters"),
        ({"slack": {"signing_secret": "s", "path": "actions"}}, "absolute URL path"),
    ],
)
def test_bad_actions_settings_say_what_is_wrong(section: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ActionSettings.model_validate(section)
