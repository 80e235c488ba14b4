"""Hot reload: file edits (atomic saves), SIGHUP and POST /-/reload swap the config safely."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from relay.app import RELAY, Relay, build_app
from relay.config import ConfigIssue, load_config
from relay.receiver import SIGNATURE_HEADER
from relay.reload import public_place
from tests.conftest import SECRET, read_jsonl, sample, wait_until

Client = TestClient[Any, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
PATH = "/webhooks/mosaic"
ADMIN = "admin-token-for-tests"
MAX_POSTS = 2000


def relay_yaml(route_to: str, *, old_path: str = "old.jsonl", admin: bool = True) -> str:
    """Two file channels, ``old`` and ``new``; every event goes to ``route_to``."""
    admin_line = f"server: {{admin_token: {ADMIN}}}" if admin else ""
    return f"""\
{admin_line}
auth:
  secrets: ["{SECRET}"]
store: {{url: sqlite:///relay.db, sync: normal}}
delivery:
  workers: 4
  lease: 5s
  max_attempts: 1000
  backoff: {{initial: 10ms, max: 50ms}}
  shutdown_grace: 1s
channels:
  old: {{type: file, path: {old_path}}}
  new: {{type: file, path: new.jsonl}}
routes:
  - name: main
    to: [{route_to}]
"""


def line_of(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


def atomic_save(path: Path, text: str) -> None:
    """What editors do: write a temporary file next to the config, then rename it over."""
    temporary = path.with_name(f".{path.name}.swp")
    temporary.write_text(text)
    os.replace(temporary, path)


def event(seq: int) -> dict[str, Any]:
    return {**sample("run_progress"), "seq": seq}


async def post(client: Client, body: dict[str, Any]) -> Any:
    return await client.post(PATH, data=json.dumps(body), headers={SIGNATURE_HEADER: SECRET})


def rewrite(path: Path) -> Callable[[], None]:
    """An in-place write of the same bytes: a change event, and the same config."""

    def write() -> None:
        path.write_bytes(path.read_bytes())

    return write


def relink(link: Path, target: str) -> Callable[[], None]:
    """Point ``link`` at ``target`` by an atomic rename, as the kubelet updates a ConfigMap."""

    def swap() -> None:
        temporary = link.with_name(link.name + "_tmp")
        temporary.symlink_to(target)
        os.replace(temporary, link)

    return swap


async def watching(relay: Relay, poke: Callable[[], None], timeout: float = 5.0) -> None:
    """Until the watcher has seen a no-op change (it registers in the background at startup)."""
    deadline = time.monotonic() + timeout
    while relay.live.last_reload.get("trigger") != "file change":
        assert time.monotonic() < deadline, "the config watcher never saw a change"
        poke()
        with contextlib.suppress(AssertionError):
            await wait_until(lambda: relay.live.last_reload.get("trigger") == "file change", 0.3)


async def app_client(path: Path, aiohttp_client: MakeClient, *, watch: bool) -> Client:
    return await aiohttp_client(build_app(load_config(path, env={}), watch=watch))


async def all_sent(relay: Relay, count: int) -> bool:
    rows = await relay.store.status()
    return all(row.state == "sent" for row in rows) and sum(r.count for r in rows) == count


def retried(relay: Relay, channel: str) -> float:
    labels = {"channel": channel, "outcome": "retried"}
    return relay.metrics.registry.get_sample_value("relay_deliveries_total", labels) or 0.0


@dataclass
class Posted:
    event_id: str
    status: int
    sent_after_swap: bool
    answered_before_swap: bool


# --- file watch ----------------------------------------------------------------------------------


async def test_an_edit_reroutes_within_2s_without_losing_or_duplicating_events(
    write_config: Callable[[str], Path], aiohttp_client: MakeClient, tmp_path: Path
) -> None:
    path = write_config(relay_yaml("old"))
    client = await app_client(path, aiohttp_client, watch=True)
    relay = client.app[RELAY]
    await watching(relay, rewrite(path))
    before = relay.live.current
    posted: list[Posted] = []

    async def post_until_well_after_the_swap() -> None:
        for seq in range(MAX_POSTS):
            sent_after_swap = relay.live.current is not before
            answer = await post(client, event(seq))
            body = await answer.json()
            posted.append(
                Posted(
                    body["event_id"], answer.status, sent_after_swap, relay.live.current is before
                )
            )
            if sum(p.sent_after_swap for p in posted) >= 20:
                return

    poster = asyncio.create_task(post_until_well_after_the_swap())
    try:
        await wait_until(lambda: len(posted) >= 20)
        atomic_save(path, relay_yaml("new"))
        await wait_until(lambda: relay.live.current is not before, timeout=2.0)
        await asyncio.wait_for(poster, 10)
    finally:
        poster.cancel()

    assert [p.status for p in posted] == [202] * len(posted)
    await wait_until(lambda: all_sent(relay, len(posted)))
    old, new = read_jsonl(tmp_path / "old.jsonl"), read_jsonl(tmp_path / "new.jsonl")
    delivered = Counter(line["event_id"] for line in old + new)
    assert delivered == Counter(p.event_id for p in posted)  # each accepted event exactly once
    old_ids, new_ids = {line["event_id"] for line in old}, {line["event_id"] for line in new}
    assert {p.event_id for p in posted if p.answered_before_swap} <= old_ids
    assert {p.event_id for p in posted if p.sent_after_swap} <= new_ids
    assert len(old_ids) >= 20 and len(new_ids) >= 20
    assert relay.live.last_reload["ok"] and relay.live.last_reload["trigger"] == "file change"


async def test_a_broken_edit_keeps_the_old_routes_and_reports_its_line(
    write_config: Callable[[str], Path],
    aiohttp_client: MakeClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = write_config(relay_yaml("old"))
    client = await app_client(path, aiohttp_client, watch=True)
    relay = client.app[RELAY]
    await watching(relay, rewrite(path))
    running = relay.live.current.loaded.sha256

    broken = relay_yaml("nwe")
    caplog.set_level(logging.ERROR, logger="relay.reload")
    atomic_save(path, broken)
    await wait_until(lambda: relay.live.last_reload.get("ok") is False, timeout=2.0)
    expected = f"relay.yaml:{line_of(broken, 'to: [nwe]')}: routes[0].to: unknown channel 'nwe'"
    assert relay.live.last_reload["errors"][0].startswith(expected)
    assert "did you mean 'new'" in relay.live.last_reload["errors"][0]
    assert any(expected in record.getMessage() for record in caplog.records)

    ready = await client.get("/readyz")
    assert ready.status == 200  # a broken edit is not an outage
    body = await ready.json()
    assert body["config"]["sha256"] == running
    assert body["last_reload"]["ok"] is False and body["last_reload"]["errors"]

    assert (await post(client, event(1))).status == 202
    await wait_until(lambda: len(read_jsonl(tmp_path / "old.jsonl")) == 1)

    fixed = relay_yaml("new")
    atomic_save(path, fixed)
    await wait_until(lambda: relay.live.last_reload.get("ok") is True, timeout=2.0)
    assert relay.live.current.loaded.sha256 == hashlib.sha256(fixed.encode()).hexdigest()
    assert (await post(client, event(2))).status == 202
    await wait_until(lambda: len(read_jsonl(tmp_path / "new.jsonl")) == 1)
    assert len(read_jsonl(tmp_path / "old.jsonl")) == 1


@pytest.mark.parametrize(
    ("edit", "expected_line", "fragment"),
    [
        (lambda text: text.replace("    to: [old]", "    to: [old"), None, "invalid YAML"),
        (lambda text: text.replace("max_attempts", "max_atempts"), "max_atempts", "unknown key"),
        (lambda text: text.replace("lease: 5s", "lease: 5 minutes"), "lease:", "not a duration"),
        (
            lambda text: text.replace(f'"{SECRET}"', '"${UNSET_FOR_TESTS}"'),
            "secrets",
            "UNSET_FOR_TESTS is not set",
        ),
    ],
    ids=["yaml-syntax", "typo", "bad-duration", "unset-secret"],
)
async def test_every_kind_of_broken_edit_is_refused_with_a_line(
    write_config: Callable[[str], Path],
    aiohttp_client: MakeClient,
    edit: Callable[[str], str],
    expected_line: str | None,
    fragment: str,
) -> None:
    path = write_config(relay_yaml("old"))
    client = await app_client(path, aiohttp_client, watch=False)
    relay = client.app[RELAY]
    running = relay.live.current
    broken = edit(relay_yaml("old"))
    path.write_text(broken)
    answer = await client.post("/-/reload", headers={"Authorization": f"Bearer {ADMIN}"})
    assert answer.status == 400
    errors = (await answer.json())["errors"]
    assert relay.live.current is running
    assert any(fragment in error for error in errors), errors
    if expected_line is not None:
        assert any(f"relay.yaml:{line_of(broken, expected_line)}:" in e for e in errors), errors
    else:
        assert all(error.startswith("relay.yaml:") and error[11].isdigit() for error in errors)


async def test_an_unchanged_file_does_not_swap(
    write_config: Callable[[str], Path], aiohttp_client: MakeClient
) -> None:
    path = write_config(relay_yaml("old"))
    client = await app_client(path, aiohttp_client, watch=False)
    relay = client.app[RELAY]
    running = relay.live.current
    answer = await client.post("/-/reload", headers={"Authorization": f"Bearer {ADMIN}"})
    assert answer.status == 200
    assert (await answer.json())["changed"] is False
    assert relay.live.current is running


# --- POST /-/reload ------------------------------------------------------------------------------


async def test_reload_endpoint_needs_the_admin_token(
    write_config: Callable[[str], Path], aiohttp_client: MakeClient
) -> None:
    path = write_config(relay_yaml("old"))
    client = await app_client(path, aiohttp_client, watch=False)
    running = client.app[RELAY].live.current
    path.write_text(relay_yaml("new"))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": ADMIN}):
        answer = await client.post("/-/reload", headers=headers)
        assert answer.status == 401 and "error" in await answer.json()
        assert ADMIN not in await answer.text()
    assert client.app[RELAY].live.current is running


async def test_reload_endpoint_is_absent_without_an_admin_token(
    write_config: Callable[[str], Path], aiohttp_client: MakeClient
) -> None:
    path = write_config(relay_yaml("old", admin=False))
    client = await app_client(path, aiohttp_client, watch=False)
    answer = await client.post("/-/reload", headers={"Authorization": f"Bearer {ADMIN}"})
    assert answer.status == 404


LEAKS = {
    "header-name": ("new: {type: file, path: new.jsonl}",
                    'new: {type: webhook, url: "http://127.0.0.1:9/", headers: {"Auth: LEAKME": x}}'),
    "value-in-wrong-field": ("lease: 5s", "lease: LEAKME"),
    "template-text": ("routes:", 'templates: {t: {text: "{{ x | LEAKME }}"}}\nroutes:'),
    "value-as-key": ("new: {type: file, path: new.jsonl}", "new: {type: file, LEAKME: 1}"),
    "unknown-channel": ("to: [old]", "to: [LEAKME]"),
    "duplicate-key": ("routes:", "LEAKME: 1\nLEAKME: 2\nroutes:"),
}  # fmt: skip


@pytest.mark.parametrize("leak", LEAKS.values(), ids=LEAKS.keys())
async def test_readyz_says_where_a_reload_failed_but_never_quotes_the_file(
    write_config: Callable[[str], Path], aiohttp_client: MakeClient, leak: tuple[str, str]
) -> None:
    path = write_config(relay_yaml("old"))
    client = await app_client(path, aiohttp_client, watch=False)
    good, bad = leak
    broken = relay_yaml("old").replace(good, bad, 1)
    path.write_text(broken)

    admin = await client.post("/-/reload", headers={"Authorization": f"Bearer {ADMIN}"})
    assert admin.status == 400
    assert "LEAKME" in await admin.text()  # the operator sees the whole message

    ready = await client.get("/readyz")
    assert ready.status == 200 and "LEAKME" not in await ready.text()
    errors = (await ready.json())["last_reload"]["errors"]
    assert errors and all(re.fullmatch(r"relay\.yaml:\d+(: [\w.*\[\]]+)?", e) for e in errors)
    lines = [n for n, text in enumerate(broken.splitlines(), 1) if "LEAKME" in text]
    assert any(e.split(":")[1] in map(str, lines) for e in errors), errors


def test_a_public_place_masks_the_names_the_file_chose() -> None:
    issue = ConfigIssue(7, "channels.team-slack.headers.X-Api-Key", "'X-Api-Key' is bad")
    assert public_place(issue, "relay.yaml") == "relay.yaml:7: channels.*.headers.*"
    issue = ConfigIssue(9, "routes[2].match.status", "unknown status 'x'")
    assert public_place(issue, "relay.yaml") == "relay.yaml:9: routes[2].match.status"
    assert public_place(ConfigIssue(None, "", "cannot read"), "relay.yaml") == "relay.yaml"


async def test_reload_endpoint_swaps_or_refuses(
    write_config: Callable[[str], Path], aiohttp_client: MakeClient, tmp_path: Path
) -> None:
    path = write_config(relay_yaml("old"))
    client = await app_client(path, aiohttp_client, watch=False)
    admin = {"Authorization": f"Bearer {ADMIN}"}

    path.write_text(relay_yaml("new").replace("server: {", "server: {port: 9999, "))
    answer = await client.post("/-/reload", headers=admin)
    assert answer.status == 200
    summary = await answer.json()
    assert summary["ok"] and summary["changed"] and summary["trigger"] == "POST /-/reload"
    assert summary["channels"] == ["new", "old"] and summary["routes"] == ["main"]
    assert summary["needs_restart"] == ["server.port"]
    assert (await post(client, event(1))).status == 202
    await wait_until(lambda: len(read_jsonl(tmp_path / "new.jsonl")) == 1)

    path.write_text(relay_yaml("nope"))
    answer = await client.post("/-/reload", headers=admin)
    assert answer.status == 400
    refused = await answer.json()
    assert refused["error"] and "unknown channel 'nope'" in refused["errors"][0]
    assert (await post(client, event(2))).status == 202
    await wait_until(lambda: len(read_jsonl(tmp_path / "new.jsonl")) == 2)
    assert not (tmp_path / "old.jsonl").exists()


async def test_config_warnings_are_logged_at_start_and_on_reload(
    write_config: Callable[[str], Path],
    aiohttp_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="relay.app")

    def warned() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    text = relay_yaml("old")
    path = write_config(text)
    client = await app_client(path, aiohttp_client, watch=False)
    assert warned() == [
        f"config: relay.yaml:{line_of(text, '  new:')}: warning: channels.new: "
        "channel 'new' is not used by any route"
    ]
    caplog.clear()
    text = relay_yaml("new")
    path.write_text(text)
    answer = await client.post("/-/reload", headers={"Authorization": f"Bearer {ADMIN}"})
    assert answer.status == 200
    assert warned() == [
        f"config: relay.yaml:{line_of(text, '  old:')}: warning: channels.old: "
        "channel 'old' is not used by any route"
    ]


async def test_restart_only_changes_are_reported_until_a_restart(
    write_config: Callable[[str], Path], aiohttp_client: MakeClient
) -> None:
    path = write_config(relay_yaml("old"))
    client = await app_client(path, aiohttp_client, watch=False)
    admin = {"Authorization": f"Bearer {ADMIN}"}

    async def reload(text: str) -> list[str]:
        path.write_text(text)
        answer = await client.post("/-/reload", headers=admin)
        assert answer.status == 200
        notes: list[str] = (await answer.json())["needs_restart"]
        return notes

    moved = relay_yaml("old").replace("server: {", "server: {port: 9999, path: /in, ")
    assert await reload(moved) == ["server.port", "server.path"]
    assert await reload(moved.replace("to: [old]", "to: [new]")) == ["server.port", "server.path"]
    assert await reload(relay_yaml("new")) == []
    other_store = relay_yaml("new").replace("sqlite:///relay.db", "sqlite:///other.db")
    assert await reload(other_store) == ["store"]


async def test_a_symlinked_config_swap_is_seen(aiohttp_client: MakeClient, tmp_path: Path) -> None:
    for version, route in (("..v1", "old"), ("..v2", "new")):
        (tmp_path / version).mkdir()
        (tmp_path / version / "relay.yaml").write_text(relay_yaml(route))
    (tmp_path / "..data").symlink_to("..v1")
    path = tmp_path / "relay.yaml"
    path.symlink_to("..data/relay.yaml")
    client = await app_client(path, aiohttp_client, watch=True)
    relay = client.app[RELAY]
    await watching(
        relay, lambda: (tmp_path / "..v1" / "relay.yaml").write_text(relay_yaml("old")), 2.0
    )
    relink(tmp_path / "..data", "..v2")()
    await wait_until(lambda: relay.live.current.loaded.config.routes[0].to == ("new",), timeout=2.0)


async def test_a_reload_that_cannot_build_the_channels_keeps_the_old_config(
    write_config: Callable[[str], Path],
    aiohttp_client: MakeClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write_config(relay_yaml("old"))
    client = await app_client(path, aiohttp_client, watch=False)
    relay = client.app[RELAY]
    running = relay.live.current

    def broken_build(*args: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr("relay.reload.Runtime.build", broken_build)
    path.write_text(relay_yaml("new"))
    answer = await client.post("/-/reload", headers={"Authorization": f"Bearer {ADMIN}"})
    assert answer.status == 400
    assert (await answer.json())["errors"] == ["cannot apply the new config: RuntimeError"]
    assert relay.live.current is running


# --- queued jobs across a reload -----------------------------------------------------------------


async def test_queued_jobs_use_the_channel_settings_current_at_send_time(
    write_config: Callable[[str], Path], aiohttp_client: MakeClient, tmp_path: Path
) -> None:
    (tmp_path / "blocked").mkdir()  # a folder: every write fails, the job keeps retrying
    path = write_config(relay_yaml("old", old_path="blocked"))
    client = await app_client(path, aiohttp_client, watch=False)
    relay = client.app[RELAY]
    assert (await post(client, event(1))).status == 202
    await wait_until(lambda: retried(relay, "old") >= 2)

    path.write_text(relay_yaml("old", old_path="fixed.jsonl"))
    assert relay.reloader is not None
    assert (await relay.reloader.reload("test"))["ok"]
    await wait_until(lambda: len(read_jsonl(tmp_path / "fixed.jsonl")) == 1)
    assert read_jsonl(tmp_path / "fixed.jsonl")[0]["channel"] == "old"


async def test_a_job_whose_channel_was_removed_is_dead_lettered_with_that_reason(
    write_config: Callable[[str], Path], aiohttp_client: MakeClient, tmp_path: Path
) -> None:
    (tmp_path / "blocked").mkdir()
    path = write_config(relay_yaml("old", old_path="blocked"))
    client = await app_client(path, aiohttp_client, watch=False)
    relay = client.app[RELAY]
    assert (await post(client, event(1))).status == 202
    await wait_until(lambda: retried(relay, "old") >= 1)

    without_old = relay_yaml("new").replace("  old: {type: file, path: old.jsonl}\n", "")
    path.write_text(without_old)
    assert relay.reloader is not None
    assert (await relay.reloader.reload("test"))["ok"]

    async def dead() -> bool:
        return bool(await relay.store.dead_letters(limit=10))

    await wait_until(dead)
    (job,) = await relay.store.dead_letters(limit=10)
    assert job.channel == "old"
    assert job.last_error == "channel 'old' is no longer configured"


# --- SIGHUP --------------------------------------------------------------------------------------


class ServeProcess:
    """``relay serve --no-watch`` on a free port: only SIGHUP (or the API) reloads it."""

    def __init__(self, config: Path) -> None:
        self.stderr = config.parent / "stderr.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "relay", "serve", "-c", str(config), "--port", "0"]
        self.proc = subprocess.Popen(
            [*command, "--no-watch", "--log-format", "json"],
            stdout=subprocess.DEVNULL,
            stderr=self.stderr.open("w"),
            env=env,
            cwd=config.parent,
        )

    def base_url(self) -> str | None:
        for line in self.stderr.read_text().splitlines():
            if "listening on " in line:
                url = line.split("listening on ", 1)[1].split()[0]
                return url.removesuffix(PATH)
        assert self.proc.poll() is None, self.stderr.read_text()
        return None

    def log_records(self) -> list[dict[str, Any]]:
        lines = self.stderr.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout=20)


@pytest.fixture
def serve(write_config: Callable[[str], Path]) -> Iterator[tuple[ServeProcess, Path]]:
    path = write_config(relay_yaml("old"))
    process = ServeProcess(path)
    try:
        yield process, path
    finally:
        process.stop()


async def test_sighup_reloads_a_running_relay(
    serve: tuple[ServeProcess, Path], tmp_path: Path
) -> None:
    process, path = serve
    await wait_until(lambda: process.base_url() is not None, timeout=20)
    base = process.base_url()
    assert base is not None
    async with aiohttp.ClientSession() as session:

        async def send(seq: int) -> None:
            answer = await session.post(
                base + PATH, data=json.dumps(event(seq)), headers={SIGNATURE_HEADER: SECRET}
            )
            assert answer.status == 202

        async def last_reload() -> dict[str, Any]:
            answer = await session.get(base + "/readyz")
            assert answer.status == 200
            body: dict[str, Any] = (await answer.json())["last_reload"]
            return body

        # /healthz answering means the loop runs, so the SIGHUP handler is installed.
        assert (await session.get(base + "/healthz")).status == 200
        await send(1)
        await wait_until(lambda: len(read_jsonl(tmp_path / "old.jsonl")) == 1)

        atomic_save(path, relay_yaml("new"))
        new_sha = hashlib.sha256(path.read_bytes()).hexdigest()
        process.proc.send_signal(signal.SIGHUP)

        async def reloaded() -> bool:
            state = await last_reload()
            return state.get("trigger") == "SIGHUP" and state.get("sha256") == new_sha

        await wait_until(reloaded, timeout=2.0)
        await send(2)
        await wait_until(lambda: len(read_jsonl(tmp_path / "new.jsonl")) == 1)

        broken = relay_yaml("nwe")
        atomic_save(path, broken)
        process.proc.send_signal(signal.SIGHUP)

        async def refused() -> bool:
            return (await last_reload()).get("ok") is False

        await wait_until(refused, timeout=2.0)
        await send(3)
        await wait_until(lambda: len(read_jsonl(tmp_path / "new.jsonl")) == 2)

    assert process.stop() == 0
    expected = f"relay.yaml:{line_of(broken, 'to: [nwe]')}: routes[0].to: unknown channel 'nwe'"
    errors = [r for r in process.log_records() if r["level"] == "error"]
    assert any(expected in record["msg"] for record in errors), errors
    assert len(read_jsonl(tmp_path / "old.jsonl")) == 1


# --- secrets from files and the environment ------------------------------------------------------


async def test_a_reload_rereads_a_rotated_secret_file(
    write_config: Callable[[str], Path], aiohttp_client: MakeClient, tmp_path: Path
) -> None:
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_text("first-secret\n")
    path = write_config(relay_yaml("old").replace(f'"{SECRET}"', '"${file:webhook-secret}"'))
    client = await app_client(path, aiohttp_client, watch=False)
    signed = {SIGNATURE_HEADER: "second-secret"}
    assert (await client.post(PATH, json=sample("test"), headers=signed)).status == 401

    secret_file.write_text("second-secret\n")  # the config file itself is unchanged
    answer = await client.post("/-/reload", headers={"Authorization": f"Bearer {ADMIN}"})
    assert answer.status == 200 and (await answer.json())["changed"] is True
    assert (await client.post(PATH, json=sample("test"), headers=signed)).status == 200


async def test_a_reload_missing_a_variable_says_the_environment_is_fixed_at_start(
    write_config: Callable[[str], Path],
    aiohttp_client: MakeClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write_config(relay_yaml("old"))
    client = await app_client(path, aiohttp_client, watch=False)
    monkeypatch.delenv("NEW_TOKEN_NOBODY_SET", raising=False)
    path.write_text(
        relay_yaml("old").replace(
            "  new: {type: file, path: new.jsonl}",
            '  new: {type: telegram, token: "${NEW_TOKEN_NOBODY_SET}", chat_id: "1"}',
        )
    )
    answer = await client.post("/-/reload", headers={"Authorization": f"Bearer {ADMIN}"})
    assert answer.status == 400
    errors = (await answer.json())["errors"]
    assert any("NEW_TOKEN_NOBODY_SET is not set" in line for line in errors)
    assert any("restart it" in line and "${file:" in line for line in errors)
