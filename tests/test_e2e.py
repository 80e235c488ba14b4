"""End to end through a real `relay serve` process on a port: every sample, console + file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import read_jsonl, sample_names
from tests.relay_process import RelayProcess

ROOT = Path(__file__).resolve().parent.parent


def wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


@pytest.fixture
def example_relay(tmp_path: Path) -> Iterator[RelayProcess]:
    config = tmp_path / "relay.yaml"
    shutil.copy(ROOT / "relay.yaml.example", config)
    relay = RelayProcess(config)
    yield relay
    relay.stop()


def test_every_sample_through_the_example_config(
    example_relay: RelayProcess, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MOSAIC_WEBHOOK_SECRET"}
    sent = subprocess.run(
        [
            sys.executable,
            "-m",
            "relay",
            "send-sample",
            "all",
            "-c",
            str(tmp_path / "relay.yaml"),
            "--url",
            example_relay.url,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    answers = dict(line.split(": ", 1) for line in sent.stdout.splitlines())
    assert set(answers) == set(sample_names())
    assert answers["test"].startswith("200")
    assert all(answers[name].startswith("202") for name in answers if name != "test")

    archive = tmp_path / "deliveries.jsonl"
    # Progress is excluded from the archive by the example's routes; the rest arrive once each.
    expected = {name for name in sample_names() if name not in ("run_progress", "test")}
    wait_for(lambda: len(read_jsonl(archive)) == len(expected))
    lines = read_jsonl(archive)
    assert {line["flag"] for line in lines} == {"RUN_STARTED", "RUN_FINISHED"}
    for line in lines:
        assert {
            "ts",
            "channel",
            "route",
            "event_id",
            "run_id",
            "agent_id",
            "flag",
            "status",
            "text",
        } <= set(line)
        assert line["text"].strip()
    youtube = [line for line in lines if line["route"] == "youtube-announcements"]
    assert youtube and "Never Gonna Give You Up" in youtube[0]["text"]
    failed = [line for line in lines if line["status"] == "failed"]
    assert "Render node ran out of credits" in failed[0]["text"]

    # The console shows a block per message, the TEST event included.
    wait_for(lambda: example_relay.stdout_path.read_text().count("── stdout") == len(expected) + 1)
    assert example_relay.stop() == 0
    log = example_relay.stderr_path.read_text()
    assert "example default" in log  # the dev-secret warning
    assert "dev-secret" not in log
    assert "Traceback" not in log

    again = subprocess.run(
        [sys.executable, "-m", "relay", "status", "-c", str(tmp_path / "relay.yaml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert again.returncode == 0 and "sent" in again.stdout
