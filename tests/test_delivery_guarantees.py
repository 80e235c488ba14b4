"""Delivery that loses nothing, shown on real `relay serve` processes.

Every webhook answered with a 2xx reaches every channel its routes name, once, in order per run,
across crashes, restarts, outages and rate limits, or is dead-lettered with its reason. Each test
starts the relay as a subprocess with its own config and SQLite store, and talks to it (and to
local fake APIs) over 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from relay.receiver import SIGNATURE_HEADER
from relay.store import SQLiteStore
from tests.conftest import SECRET, wait_until
from tests.fakes.slack import FakeSlack
from tests.relay_process import RelayProcess, run_cli
from tests.test_dispatch import paced_excess

SLACK_TOKEN = "xoxb-test-token"
SLACK_CHANNEL = "#video-alerts"
SEQ_TEMPLATE = "{{ run_id }}:{{ event.seq }}"
Launch = Callable[[Path], Awaitable[RelayProcess]]


def write_config(
    folder: Path,
    channels: dict[str, dict[str, Any]],
    *,
    delivery: dict[str, Any] | None = None,
    sync: str = "normal",
) -> Path:
    """A relay.yaml routing every event to every channel; each message reads ``RUN:SEQ``."""
    config = {
        "auth": {"secrets": [SECRET]},
        "store": {"url": "sqlite:///relay.db", "sync": sync},
        "delivery": {
            "workers": 4,
            "lease": "10s",
            "max_attempts": 3,
            "backoff": {"initial": "10ms", "max": "50ms"},
            "shutdown_grace": "5s",
            **(delivery or {}),
        },
        "channels": {name: {"template": "seq", **spec} for name, spec in channels.items()},
        "routes": [{"name": "everything", "to": list(channels)}],
        "templates": {"seq": {"text": SEQ_TEMPLATE}},
    }
    path = folder / "relay.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def slack_token_channel(slack: FakeSlack, token: str = SLACK_TOKEN) -> dict[str, Any]:
    return {
        "type": "slack",
        "token": token,
        "channel": SLACK_CHANNEL,
        "api_url": slack.api_url,
        "rate_limit": "off",
    }


def slack_webhook_channel(slack: FakeSlack) -> dict[str, Any]:
    return {"type": "slack", "webhook_url": slack.webhook_url(), "rate_limit": "off"}


def event(run_id: str, seq: int) -> dict[str, Any]:
    return {
        "flag": "RUN_PROGRESS",
        "agent_id": "agent-1",
        "run_id": run_id,
        "status": "running",
        "seq": seq,
    }


async def post(session: aiohttp.ClientSession, relay: RelayProcess, body: dict[str, Any]) -> str:
    """POST one signed event that must be accepted; returns its event id."""
    async with session.post(relay.url, json=body, headers={SIGNATURE_HEADER: SECRET}) as answer:
        assert answer.status == 202, await answer.text()
        event_id: str = (await answer.json())["event_id"]
        return event_id


def by_run(keys: Iterable[str]) -> dict[str, list[int]]:
    """``RUN:SEQ`` message texts grouped by run, in the order given."""
    runs: dict[str, list[int]] = defaultdict(list)
    for key in keys:
        run, _, seq = key.rpartition(":")
        runs[run].append(int(seq))
    return dict(runs)


def slack_texts(slack: FakeSlack) -> list[str]:
    return [message.text for message in slack.messages(SLACK_CHANNEL)]


def complete_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a file another process appends to (a partial last line is skipped)."""
    if not path.exists():
        return []
    text = path.read_text()
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines()]


def stored_events(db: Path) -> list[tuple[str, str]]:
    """``(event_id, run_id)`` of every event in a relay's SQLite store, in acceptance order."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT event_id, run_id FROM events ORDER BY seq").fetchall()


async def job_states(db: Path) -> Counter[str]:
    store = SQLiteStore(db, create=False)
    await store.open()
    try:
        rows = await store.status()
    finally:
        await store.close()
    states: Counter[str] = Counter()
    for row in rows:
        states[row.state] += row.count
    return states


def count_in_log(relay: RelayProcess, words: str) -> int:
    return relay.log().count(words)


@pytest.fixture
def workers() -> int:
    """Worker processes per relay; the tests marked ``BOTH`` run with one and with two."""
    return 1


BOTH = pytest.mark.parametrize("workers", [1, 2], ids=["1-worker", "2-workers"])


@pytest.fixture
async def launch(workers: int) -> AsyncIterator[Launch]:
    """Start relays; any still running at the end is killed."""
    started: list[RelayProcess] = []

    async def start(config: Path) -> RelayProcess:
        relay = await RelayProcess.launch(config, workers=workers)
        started.append(relay)
        return relay

    yield start
    for relay in started:
        relay.kill()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as client:
        yield client


# --- crash -----------------------------------------------------------------------------------


@BOTH
async def test_sigkill_mid_stream_loses_no_accepted_event(
    tmp_path: Path,
    launch: Launch,
    session: aiohttp.ClientSession,
    record_property: Callable[[str, object], None],
) -> None:
    workers = 4
    config = write_config(
        tmp_path,
        {"archive": {"type": "file", "path": "deliveries.jsonl"}},
        delivery={"workers": workers, "lease": "1s"},
        sync="full",
    )
    archive = tmp_path / "deliveries.jsonl"
    relay = await launch(config)
    accepted: set[str] = set()
    senders = asyncio.Semaphore(16)  # a steady stream rather than one burst

    async def one(seq: int) -> None:
        headers = {SIGNATURE_HEADER: SECRET}
        body = event(f"run-{seq % 5}", seq)
        try:
            async with senders, session.post(relay.url, json=body, headers=headers) as answer:
                if answer.status == 202:
                    accepted.add((await answer.json())["event_id"])
                else:
                    assert answer.status == 503, await answer.text()
        except (aiohttp.ClientError, TimeoutError):
            pass  # killed before it answered: may or may not be stored, never promised

    posts = [asyncio.create_task(one(seq)) for seq in range(500)]
    await wait_until(lambda: len(accepted) >= 150 and len(complete_lines(archive)) >= 20, 15)
    killed_at = time.time()
    relay.kill()
    await asyncio.gather(*posts)
    assert len(accepted) < 500, "the relay was killed after every event was answered"
    delivered_before_kill = len(complete_lines(archive))
    stored = stored_events(tmp_path / "relay.db")
    assert {event_id for event_id, _ in stored} >= accepted

    restarted = await launch(config)
    every_id = {event_id for event_id, _ in stored}
    await wait_until(lambda: every_id <= {line["event_id"] for line in complete_lines(archive)}, 20)
    assert restarted.stop() == 0
    assert stored_events(tmp_path / "relay.db") == stored
    assert await job_states(tmp_path / "relay.db") == {"sent": len(stored)}
    lines = complete_lines(archive)
    copies = Counter(line["event_id"] for line in lines)
    assert set(copies) == every_id

    # A second copy only of what was in flight at the kill: written before it, again after.
    duplicates = {event_id for event_id, n in copies.items() if n > 1}
    for event_id in duplicates:
        first, second = (line["ts"] for line in lines if line["event_id"] == event_id)
        assert copies[event_id] == 2 and first < killed_at < second
    assert len(duplicates) <= workers
    record_property("accepted", len(accepted))
    record_property("delivered_before_kill", delivered_before_kill)
    record_property("duplicates_in_flight_at_kill", len(duplicates))
    print(
        f"crash: {len(accepted)} accepted, {len(stored)} stored, {delivered_before_kill} "
        f"delivered before SIGKILL, {len(duplicates)} delivered twice"
    )

    # Per run, first deliveries follow acceptance order.
    first_seen = list(dict.fromkeys(line["event_id"] for line in lines))
    runs: dict[str, list[str]] = defaultdict(list)
    for event_id, run_id in stored:
        runs[run_id].append(event_id)
    for run_id, in_order in runs.items():
        assert [e for e in first_seen if e in set(in_order)] == in_order, run_id


# --- outages and rate limits -----------------------------------------------------------------


@pytest.mark.parametrize("outage", ["refused", "dropped", "http-500"])
async def test_a_channel_outage_delays_but_loses_nothing(
    outage: str,
    tmp_path: Path,
    launch: Launch,
    session: aiohttp.ClientSession,
    fake_slack: FakeSlack,
) -> None:
    channel = (
        slack_token_channel(fake_slack)
        if outage == "http-500"
        else slack_webhook_channel(fake_slack)
    )
    config = write_config(
        tmp_path,
        {"team": channel},
        delivery={"max_attempts": 1000, "backoff": {"initial": "10ms", "max": "100ms"}},
    )
    relay = await launch(config)
    if outage == "http-500":
        fake_slack.fail_next(1_000_000, status=500)
    else:
        await fake_slack.go_down(refuse=outage == "refused")
    for seq in range(12):
        await post(session, relay, event(f"run-{seq % 3}", seq))
    await wait_until(lambda: count_in_log(relay, "will retry") >= 12, 10)
    assert slack_texts(fake_slack) == []

    if outage == "http-500":
        fake_slack.clear_faults()
    else:
        await fake_slack.go_up()
    await fake_slack.wait_for(lambda: len(slack_texts(fake_slack)) >= 12, timeout=10)
    texts = slack_texts(fake_slack)
    assert sorted(Counter(texts).values()) == [1] * 12
    assert by_run(texts) == {f"run-{r}": list(range(r, 12, 3)) for r in range(3)}
    assert count_in_log(relay, "dead-lettered") == 0


async def test_429_storm_honours_retry_after_and_uses_no_attempts(
    tmp_path: Path, launch: Launch, session: aiohttp.ClientSession, fake_slack: FakeSlack
) -> None:
    config = write_config(
        tmp_path, {"team": slack_token_channel(fake_slack)}, delivery={"max_attempts": 2}
    )
    relay = await launch(config)
    fake_slack.fail_next(6, status=429, retry_after=1, method="chat.postMessage")
    for seq in range(6):
        await post(session, relay, event(f"run-{seq % 3}", seq))
    await fake_slack.wait_for(lambda: len(slack_texts(fake_slack)) >= 6, timeout=10)

    texts = slack_texts(fake_slack)
    assert sorted(Counter(texts).values()) == [1] * 6
    assert by_run(texts) == {"run-0": [0, 3], "run-1": [1, 4], "run-2": [2, 5]}
    calls: dict[str, list[Any]] = defaultdict(list)
    for call in fake_slack.calls_for("chat.postMessage"):
        calls[call.body["text"]].append(call)
    rate_limited = {text: sum(c.status == 429 for c in tries) for text, tries in calls.items()}
    assert sum(rate_limited.values()) == 6
    assert max(rate_limited.values()) >= 2  # more 429s than max_attempts, still delivered
    for tries in calls.values():
        for refused, retried in itertools.pairwise(tries):
            assert refused.status == 429
            assert retried.received_at >= refused.received_at + 1.0
    assert count_in_log(relay, "dead-lettered") == 0


async def test_a_429_with_retry_after_2_is_delivered_after_2_seconds_not_before(
    tmp_path: Path, launch: Launch, session: aiohttp.ClientSession, fake_slack: FakeSlack
) -> None:
    config = write_config(tmp_path, {"team": slack_webhook_channel(fake_slack)})
    relay = await launch(config)
    fake_slack.fail_next(1, status=429, retry_after=2, method="webhook")
    await post(session, relay, event("run-1", 1))
    refused, delivered = await fake_slack.wait_for(2, method="webhook", timeout=6)
    assert (refused.status, delivered.status) == (429, 200)
    assert delivered.received_at - refused.received_at >= 2.0  # exactly 2 s: tests/delivery
    assert slack_texts(fake_slack) == ["run-1:1"]


@BOTH
async def test_a_burst_for_one_slack_channel_is_paced_by_its_rate_limit(
    tmp_path: Path, launch: Launch, session: aiohttp.ClientSession, fake_slack: FakeSlack
) -> None:
    channel = {**slack_token_channel(fake_slack), "rate_limit": {"per_second": 50, "burst": 5}}
    config = write_config(tmp_path, {"team": channel}, delivery={"workers": 8})
    relay = await launch(config)
    await asyncio.gather(*(post(session, relay, event(f"run-{seq}", seq)) for seq in range(100)))
    await fake_slack.wait_for(lambda: len(slack_texts(fake_slack)) >= 100, timeout=15)

    assert sorted(Counter(slack_texts(fake_slack)).values()) == [1] * 100
    times = [call.received_at for call in fake_slack.calls_for("chat.postMessage")]
    assert len(times) == 100  # paced before sending: nothing was refused and retried
    excess, span = paced_excess(times, per_second=50, burst=5), max(times) - min(times)
    print(f"burst: 100 sends over {span:.2f}s, busiest stretch {excess:+.2f} over the bucket")
    assert paced_excess(times, per_second=50, burst=5, jitter=0.1) <= 0
    assert span >= (100 - 5) / 50 * 0.9
    assert count_in_log(relay, "dead-lettered") == 0


async def test_a_rate_limited_channel_never_delays_another(
    tmp_path: Path, launch: Launch, session: aiohttp.ClientSession, fake_slack: FakeSlack
) -> None:
    config = write_config(
        tmp_path,
        {
            "team": slack_webhook_channel(fake_slack),
            "archive": {"type": "file", "path": "deliveries.jsonl"},
        },
    )
    relay = await launch(config)
    # An hour's Retry-After: the archive can only get its messages if it never waits for Slack.
    fake_slack.fail_next(1000, status=429, retry_after=3600, method="webhook")
    archive = tmp_path / "deliveries.jsonl"
    for seq in range(10):
        await post(session, relay, event(f"run-{seq}", seq))
    await wait_until(lambda: len(complete_lines(archive)) == 10, 15)
    await fake_slack.wait_for(1, method="webhook", timeout=3)
    # The destination asked for an hour of quiet: only sends already under way when the first
    # 429 came back reached it; the rest wait for the Retry-After instead of hammering it.
    webhook_calls = fake_slack.calls_for("webhook")
    assert all(call.status == 429 for call in webhook_calls)
    assert 1 <= len(webhook_calls) <= 4
    assert max(Counter(call.body["text"] for call in webhook_calls).values()) == 1


# --- dead letters ----------------------------------------------------------------------------


async def _dead_letters(config: Path) -> list[list[str]]:
    result = await run_cli(config, "dlq", "list")
    assert result.code == 0, result.stderr
    if result.stdout == "no dead letters\n":
        return []
    return [line.split() for line in result.stdout.splitlines()]


async def test_refusals_are_dead_lettered_at_once_and_a_replayed_one_is_delivered(
    tmp_path: Path, launch: Launch, session: aiohttp.ClientSession, fake_slack: FakeSlack
) -> None:
    revoked = "xoxb-revoked-token"
    config = write_config(
        tmp_path,
        {
            "team": slack_token_channel(fake_slack, revoked),
            "hooked": slack_webhook_channel(fake_slack),
        },
    )
    relay = await launch(config)
    fake_slack.fail_next(1, status=403, method="webhook")
    await post(session, relay, event("run-1", 1))
    await wait_until(lambda: count_in_log(relay, "dead-lettered") == 2, 5)
    assert len(fake_slack.calls_for("chat.postMessage")) == 1
    assert len(fake_slack.calls_for("webhook")) == 1
    dead = {line[1]: line for line in await _dead_letters(config)}
    assert set(dead) == {"team", "hooked"}
    assert " ".join(dead["team"]).endswith("Slack error 'invalid_auth' (HTTP 200)")
    assert "HTTP 403" in " ".join(dead["hooked"])
    assert revoked not in relay.log()

    fake_slack.tokens.add(revoked)  # the workspace re-authorised the app
    replay = await run_cli(config, "dlq", "replay", dead["team"][0])
    assert replay.code == 0, replay.stderr
    await fake_slack.wait_for(lambda: slack_texts(fake_slack) == ["run-1:1"], timeout=5)
    assert len(fake_slack.calls_for("chat.postMessage")) == 2
    assert [line[1] for line in await _dead_letters(config)] == ["hooked"]
    assert len(fake_slack.calls_for("webhook")) == 1


@BOTH
async def test_5xx_until_max_attempts_dead_letters_and_replay_all_delivers_in_order(
    tmp_path: Path, launch: Launch, session: aiohttp.ClientSession, fake_slack: FakeSlack
) -> None:
    config = write_config(
        tmp_path, {"team": slack_token_channel(fake_slack)}, delivery={"max_attempts": 3}
    )
    relay = await launch(config)
    fake_slack.fail_next(6, status=500, method="chat.postMessage")
    await post(session, relay, event("run-1", 1))
    await post(session, relay, event("run-1", 2))
    await wait_until(lambda: count_in_log(relay, "dead-lettered") == 2, 5)
    calls = fake_slack.calls_for("chat.postMessage")
    assert [call.body["text"] for call in calls] == ["run-1:1"] * 3 + ["run-1:2"] * 3
    dead = await _dead_letters(config)
    assert [line[1] for line in dead] == ["team", "team"]
    for line in dead:
        assert " ".join(line).endswith(
            "gave up after 3 attempts: Slack error 'internal_error' (HTTP 500)"
        )

    replay = await run_cli(config, "dlq", "replay", "--all")
    assert replay.code == 0 and replay.stdout.startswith("replayed 2 ")
    await fake_slack.wait_for(lambda: len(slack_texts(fake_slack)) == 2, timeout=5)
    assert slack_texts(fake_slack) == ["run-1:1", "run-1:2"]
    assert await _dead_letters(config) == []


async def test_a_dead_letter_unblocks_the_next_message_of_its_run(
    tmp_path: Path, launch: Launch, session: aiohttp.ClientSession, fake_slack: FakeSlack
) -> None:
    config = write_config(
        tmp_path, {"team": slack_token_channel(fake_slack)}, delivery={"max_attempts": 3}
    )
    relay = await launch(config)
    fake_slack.fail_next(5, status=500, method="chat.postMessage")
    for seq in range(1, 6):
        await post(session, relay, event("run-1", seq))
    await fake_slack.wait_for(lambda: len(slack_texts(fake_slack)) == 4, timeout=5)
    calls = [call.body["text"] for call in fake_slack.calls_for("chat.postMessage")]
    # seq 1 dies after 3 attempts, seq 2 gets through on its third; retries never reorder.
    assert calls == ["run-1:1"] * 3 + ["run-1:2"] * 3 + ["run-1:3", "run-1:4", "run-1:5"]
    assert slack_texts(fake_slack) == ["run-1:2", "run-1:3", "run-1:4", "run-1:5"]
    assert count_in_log(relay, "dead-lettered") == 1


# --- graceful shutdown -----------------------------------------------------------------------


async def post_while_draining(relay: RelayProcess, seqs: Iterable[int]) -> list[str]:
    """POST events of run-3 on new connections; each must be refused or answered at once
    (503, or a 2xx: then it must be delivered later). Returns the texts accepted."""
    accepted = []
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=1)
    ) as fresh:
        for seq in seqs:
            try:
                async with fresh.post(
                    relay.url, json=event("run-3", seq), headers={SIGNATURE_HEADER: SECRET}
                ) as answer:
                    if 200 <= answer.status < 300:
                        accepted.append(f"run-3:{seq}")
                    else:
                        assert answer.status == 503
                        assert answer.headers.get("Retry-After")
            except aiohttp.ClientConnectionError:
                pass  # the listener is closed: refused, never lost
    return accepted


class HeldEndpoint:
    """A webhook receiver that holds every request until ``release()``; records the texts."""

    def __init__(self) -> None:
        self.arrived: list[str] = []
        self.answered: list[str] = []
        self._gate = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_post("/hook", self._handle)

    def release(self) -> None:
        self._gate.set()

    async def _handle(self, request: web.Request) -> web.Response:
        text = (await request.json())["text"]
        self.arrived.append(text)
        await self._gate.wait()
        self.answered.append(text)
        return web.json_response({"ok": True})


@pytest.fixture
async def held() -> AsyncIterator[tuple[HeldEndpoint, str]]:
    endpoint = HeldEndpoint()
    server = TestServer(endpoint.app, host="127.0.0.1")
    await server.start_server()
    try:
        yield endpoint, str(server.make_url("/hook"))
    finally:
        endpoint.release()
        await server.close()


@BOTH
async def test_sigterm_drains_in_flight_sends_and_keeps_the_rest_for_the_next_start(
    tmp_path: Path,
    launch: Launch,
    session: aiohttp.ClientSession,
    held: tuple[HeldEndpoint, str],
) -> None:
    endpoint, url = held
    config = write_config(
        tmp_path, {"hook": {"type": "webhook", "url": url}}, delivery={"shutdown_grace": "20s"}
    )
    relay = await launch(config)
    await post(session, relay, event("run-1", 1))
    await post(session, relay, event("run-2", 2))
    await wait_until(lambda: sorted(endpoint.arrived) == ["run-1:1", "run-2:2"], 5)
    await post(session, relay, event("run-1", 3))  # queued behind run-1:1
    await post(session, relay, event("run-1", 4))

    relay.terminate()
    await wait_until(lambda: "relay stopping" in relay.log(), 5)
    accepted_while_draining = await post_while_draining(relay, range(5, 8))
    await asyncio.sleep(0.3)
    assert relay.alive, "the relay exited without waiting for its in-flight sends"

    endpoint.release()
    assert await relay.wait_exit(timeout=10) == 0  # when its sends end, not the 20 s grace
    assert sorted(endpoint.answered) == ["run-1:1", "run-2:2"]

    status = await run_cli(config, "status")
    assert status.code == 0, status.stderr
    rows = {tuple(line.split()[:3]) for line in status.stdout.splitlines()[1:]}
    pending = 2 + len(accepted_while_draining)
    assert rows == {("hook", "pending", str(pending)), ("hook", "sent", "2")}

    await launch(config)
    expected = 4 + len(accepted_while_draining)
    await wait_until(lambda: len(endpoint.answered) >= expected, 5)
    assert sorted(Counter(endpoint.answered).values()) == [1] * expected
    assert by_run(endpoint.answered)["run-1"] == [1, 3, 4]


async def test_a_kept_alive_connection_gets_a_prompt_answer_during_the_drain(
    tmp_path: Path, launch: Launch, held: tuple[HeldEndpoint, str]
) -> None:
    endpoint, url = held
    config = write_config(
        tmp_path, {"hook": {"type": "webhook", "url": url}}, delivery={"shutdown_grace": "5s"}
    )
    relay = await launch(config)
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as keep_alive:
        await post(keep_alive, relay, event("run-1", 1))
        await wait_until(lambda: endpoint.arrived == ["run-1:1"], 5)
        relay.terminate()
        await wait_until(lambda: "relay stopping" in relay.log(), 5)
        try:
            async with keep_alive.post(
                relay.url,
                json=event("run-1", 2),
                headers={SIGNATURE_HEADER: SECRET},
                timeout=aiohttp.ClientTimeout(total=1),
            ) as answer:
                assert answer.status == 503
        except aiohttp.ClientConnectionError:
            pass  # dropped at once: the client knows to retry
        finally:
            endpoint.release()
    assert await relay.wait_exit(timeout=10) == 0
