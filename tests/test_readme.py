"""The README's two set-up commands stay true: CI runs the same test command."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.config import parse_config

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    lines = (ROOT / "README.md").read_text().splitlines()
    start = lines.index("```sh")
    end = lines.index("```", start + 1)
    return lines[start + 1 : end]


def test_readme_starts_with_the_two_setup_commands() -> None:
    serve, test = readme_commands()
    assert "relay serve -c relay.yaml.example" in serve
    assert "pytest" in test


def test_ci_runs_the_readme_test_command() -> None:
    _, test = readme_commands()
    pytest_part = test.split("&&")[-1].strip()
    assert pytest_part in (ROOT / ".ci" / "run").read_text()


def yaml_blocks_with(marker: str) -> list[str]:
    """The README's ```yaml blocks that contain ``marker``."""
    text = (ROOT / "README.md").read_text()
    blocks = [part.split("\n```", 1)[0] for part in text.split("```yaml\n")[1:]]
    return [block for block in blocks if marker in block]


README_ENV = {
    "SLACK_BOT_TOKEN": "xoxb-test",
    "DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/1234/token",
    "NTFY_URL": "ntfys://ntfy.example.com/video-alerts",
    "MATRIX_URL": "matrixs://relay:pass@matrix.example.org/#alerts",
    "MOSAIC_API_KEY": "mk_test",
    "SLACK_SIGNING_SECRET": "s",
    "TELEGRAM_WEBHOOK_SECRET": "t" * 20,
}


@pytest.mark.parametrize(
    "marker", ["mode: digest", "quiet_hours:", "type: discord", "type: apprise", "signing_secret"]
)
def test_the_examples_of_digests_and_new_channels_load(marker: str) -> None:
    blocks = yaml_blocks_with(marker)
    assert blocks, marker
    team = 'channels: {team-slack: {type: slack, token: xoxb-test, channel: "#a"}}\n'
    for block in blocks:
        text = block if "channels:" in block else block + "\n" + team
        config, unset = parse_config("auth: {allow_unsigned: true}\n" + text, env=README_ENV)
        assert unset == ()
        assert config.channels or config.routes
