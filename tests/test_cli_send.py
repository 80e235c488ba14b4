"""`relay send FILE` and `send-sample --fresh`: one's own event, and samples that are never duplicates."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from relay.app import build_app
from relay.cli import main
from relay.config import load_config
from relay.receiver import SIGNATURE_HEADER
from tests.conftest import BASE_CONFIG, SAMPLES, SECRET, read_jsonl, sample, wait_until
from tests.test_cli import receiver

Client = TestClient[Any, web.Application]


async def test_send_posts_ones_own_event_signed(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, got = await receiver(aiohttp_server)
    event = tmp_path / "mine.json"
    event.write_text(json.dumps({**sample("run_finished_failed"), "run_id": "my-own-run"}))
    url = str(server.make_url("/webhooks/mosaic"))
    argv = ["send", str(event), "--url", url, "--secret", "given"]
    assert await asyncio.to_thread(main, argv) == 0
    assert capsys.readouterr().out.startswith("mine.json: 202 ")
    ((_, headers, body),) = got
    assert headers[SIGNATURE_HEADER] == "given"
    assert body == event.read_bytes()  # sent as written


async def test_send_of_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["send", str(tmp_path / "nope.json"), "--url", "http://127.0.0.1:9/", "--secret", "x"]
    assert await asyncio.to_thread(main, argv) == 1
    assert "cannot read" in capsys.readouterr().err


async def test_fresh_samples_are_delivered_again_instead_of_duplicates(
    write_config: Callable[[str], Path],
    aiohttp_client: Callable[..., Awaitable[Client]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = await aiohttp_client(build_app(load_config(write_config(BASE_CONFIG), env={})))
    url = str(client.make_url("/webhooks/mosaic"))
    argv = ["send-sample", "run_finished_failed", "--url", url, "--secret", SECRET]
    assert await asyncio.to_thread(main, argv) == 0
    assert await asyncio.to_thread(main, argv) == 0
    assert '"duplicate"' in capsys.readouterr().out.splitlines()[-1]
    assert await asyncio.to_thread(main, [*argv, "--fresh"]) == 0
    assert '"accepted"' in capsys.readouterr().out
    await wait_until(lambda: len(read_jsonl(tmp_path / "deliveries.jsonl")) == 2)
    runs = [line["run_id"] for line in read_jsonl(tmp_path / "deliveries.jsonl")]
    assert runs[0] == sample("run_finished_failed")["run_id"] != runs[1]


async def test_fresh_keeps_one_run_one_run(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    server, got = await receiver(aiohttp_server)
    url = str(server.make_url("/"))
    argv = ["send-sample", "all", "--url", url, "--secret", "x", "--fresh"]
    assert await asyncio.to_thread(main, argv) == 0
    originals = [json.loads(p.read_text())["run_id"] for p in sorted(SAMPLES.glob("*.json"))]
    sent = [json.loads(body)["run_id"] for _, _, body in got]
    assert not set(sent) & set(originals)
    # Samples of one run keep sharing one (new) run id.
    assert len(set(sent)) == len(set(originals))


async def test_send_sample_needs_no_channel_credentials(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    write_config: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, got = await receiver(aiohttp_server)
    monkeypatch.delenv("TOKEN_NOT_SET_HERE", raising=False)
    config = BASE_CONFIG.replace(
        "channels:\n",
        'channels:\n  chat: {type: telegram, token: "${TOKEN_NOT_SET_HERE}", chat_id: "1"}\n',
    )
    path = write_config(config + f"server: {{port: {server.port}}}\n")
    assert await asyncio.to_thread(main, ["send-sample", "test", "-c", str(path)]) == 0
    ((_, headers, _),) = got
    assert headers[SIGNATURE_HEADER] == SECRET
