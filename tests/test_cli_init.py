"""`relay init` writes a starter that `relay check` accepts; `relay --version`."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from relay.cli import main
from relay.config import load_config


def test_init_writes_a_starter_that_checks_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "relay.yaml"
    assert main(["init", "-c", str(target)]) == 0
    assert "MOSAIC_WEBHOOK_SECRET" in capsys.readouterr().out
    monkeypatch.setenv("MOSAIC_WEBHOOK_SECRET", "from-the-environment")
    assert main(["check", "-c", str(target)]) == 0
    out, err = capsys.readouterr()
    assert "OK" in out and err == ""  # no error, no warning
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_init_fills_in_slack_and_telegram(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "relay.yaml"
    hook = "https://hooks.slack.com/services/T000/B000/xyz"
    assert (
        main(["init", "-c", str(target), "--slack-webhook", hook, "--telegram-chat", "-1001"]) == 0
    )
    env = {"MOSAIC_WEBHOOK_SECRET": "s", "TELEGRAM_BOT_TOKEN": "123:abc"}
    channels = load_config(target, env=env).config.channels
    assert set(channels) == {"console", "team-slack", "team-telegram"}
    assert "TELEGRAM_BOT_TOKEN" in capsys.readouterr().out
    assert "123:abc" not in target.read_text()


def test_init_never_replaces_a_config_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "relay.yaml"
    target.write_text("mine\n")
    assert main(["init", "-c", str(target)]) == 1
    assert "exists" in capsys.readouterr().err and target.read_text() == "mine\n"
    assert main(["init", "-c", str(target), "--force"]) == 0


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("relay 0.")


def test_init_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "-c", "-"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Mosaic Relay") and "MOSAIC_WEBHOOK_SECRET" in out
