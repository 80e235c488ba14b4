"""Live run cards against the Slack and Telegram fakes: one message per run, edited forward only.

The card job on its own (a recording channel of any kind, its store calls in memory): the kind
decides the markup of card and replies, and whether a card follows the run's progress."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from relay.app import build_app
from relay.cards import Done, Later, run_card_job
from relay.channels.base import Limits, Message, MessageRef
from relay.config import load_config
from relay.dispatch import Dispatcher
from relay.events import Event
from relay.matchers import Matcher
from relay.render import KINDS, Renderer, Reply, render_reply
from relay.routing import Route
from relay.store.base import Job
from tests.conftest import sample, wait_until
from tests.fakes.clock import FakeClock
from tests.fakes.slack import FakeSlack, SlackMessage
from tests.fakes.telegram import FakeTelegram, TelegramMessage
from tests.render.test_kinds import ShoutKind

RUN = "5e1f0000-aaaa-4bbb-8ccc-000000000001"
CHAT = "-1001234567890"
TOTAL = 10

Client = TestClient[Any, web.Application]


def config_text(slack: FakeSlack, telegram: FakeTelegram, interval: str = "0s") -> str:
    return f"""
auth: {{allow_unsigned: true}}
store: {{url: "sqlite:///relay.db", sync: normal}}
delivery: {{workers: 4, backoff: {{initial: 10ms, max: 50ms}}, shutdown_grace: 1s}}
channels:
  team-slack:
    type: slack
    token: xoxb-test-token
    channel: "#video-alerts"
    api_url: {slack.api_url}
    rate_limit: off
  ops-telegram:
    type: telegram
    token: "123456:TEST-token"
    chat_id: "{CHAT}"
    api_url: {telegram.base_url.removesuffix("/bot")}
    rate_limit: off
routes:
  - name: cards
    to: [team-slack, ops-telegram]
    mode: card
    thread: true
    broadcast_failures: true
    card_interval: {interval}
"""


def started() -> dict[str, Any]:
    body = sample("run_started_youtube")
    body.update(run_id=RUN, node_status_counts={"completed": 0, "in_progress": TOTAL, "failed": 0})
    return body


def progress(k: int) -> dict[str, Any]:
    """Progress step k (1..20): nodes complete every other step; node-7 fails at step 15."""
    failed = 1 if k >= 15 else 0
    completed = min(TOTAL - failed, k // 2)
    body = sample("run_progress")
    body.update(
        run_id=RUN,
        node_status_counts={
            "completed": completed,
            "in_progress": TOTAL - completed - failed,
            "failed": failed,
        },
        updated_nodes=[
            {
                "original_node_id": f"node-{k}",
                "status": "running",
                "status_message": None,
                "outputs": [],
            }
        ],
    )
    if k == 15:
        body["updated_nodes"] = [
            {
                "original_node_id": "node-7",
                "status": "failed",
                "status_message": "GPU <b>out</b> of memory",
                "outputs": [],
            }
        ]
    return body


def finished() -> dict[str, Any]:
    body = sample("run_finished_partial_schedule")
    body.update(
        run_id=RUN,
        agent_id=started()["agent_id"],
        node_status_counts={"completed": TOTAL - 1, "in_progress": 0, "failed": 1},
    )
    return body


# 20 progress events, some late (5 after 8, 12 after 16) and one repeated (3 again after 10).
ORDER = [1, 2, 3, 4, 6, 7, 8, 5, 9, 10, 3, 11, 13, 14, 15, 16, 12, 17, 18, 19, 20]


def slack_rank(text: str) -> tuple[int, int]:
    terminal = int(not text.startswith("⏳") and not text.startswith("🚀"))
    found = re.search(r"(\d+)/(\d+) nodes", text)
    return terminal, int(found.group(1)) if found else 0


def card_versions_slack(message: SlackMessage) -> list[str]:
    return [json.dumps(v.blocks) for v in message.history] + [json.dumps(message.blocks)]


def progress_of(text: str) -> int:
    found = re.search(r"(\d+)/(\d+) nodes", text)
    return int(found.group(1)) if found else 0


@pytest.fixture
async def start_relay(
    tmp_path: Path,
    fake_slack: FakeSlack,
    fake_telegram: FakeTelegram,
) -> AsyncIterator[Callable[..., Awaitable[Client]]]:
    clients: list[Client] = []

    async def start(interval: str = "0s") -> Client:
        path = tmp_path / "relay.yaml"
        path.write_text(config_text(fake_slack, fake_telegram, interval))
        client: Client = TestClient(TestServer(build_app(load_config(path, env={}))))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


async def post(client: Client, body: dict[str, Any]) -> int:
    answer = await client.post("/webhooks/mosaic", data=json.dumps(body))
    return answer.status


def slack_card(slack: FakeSlack) -> list[SlackMessage]:
    return [m for m in slack.messages("#video-alerts") if m.thread_ts is None]


def telegram_card(telegram: FakeTelegram) -> list[TelegramMessage]:
    return [m for m in telegram.messages(CHAT) if m.reply_to is None]


async def settled(client: Client) -> None:
    from relay.app import RELAY

    store = client.app[RELAY].store

    async def idle() -> bool:
        return all(row.state in ("sent", "dead") for row in await store.status())

    await wait_until(idle, timeout=15)


async def sleeping_until(client: Client, clock: FakeClock, moment: float) -> None:
    """Wait until the relay's dispatcher has nothing in flight and sleeps until ``moment``."""
    from relay.app import RELAY

    dispatcher = client.app[RELAY].dispatcher
    await wait_until(lambda: dispatcher.in_flight == 0 and clock.parked == moment, timeout=15)


async def check_run(slack: FakeSlack, telegram: FakeTelegram) -> None:
    cards = slack_card(slack)
    assert len(cards) == 1, "exactly one chat.postMessage for the card"
    card = cards[0]
    versions = card_versions_slack(card)
    ranks = [slack_rank(v) for v in [h.text for h in card.history] + [card.text]]
    ranks = [(t, progress_of(b)) for (t, _), b in zip(ranks, versions, strict=True)]
    assert ranks == sorted(ranks), f"edits went backwards: {ranks}"
    assert "Partially complete" in card.text
    assert f"{TOTAL - 1}/{TOTAL} nodes" in versions[-1]

    replies = slack.replies("#video-alerts", card.ts)
    texts = [r.text for r in replies]
    assert len(replies) == 3, texts  # node-7's failure + two outputs
    failure = next(r for r in replies if "node-7" in r.text)
    assert "GPU &lt;b&gt;out&lt;/b&gt; of memory" in failure.text
    assert failure.reply_broadcast is True
    assert sum("Output" in t for t in texts) == 2

    tcards = telegram_card(telegram)
    assert len(tcards) == 1, "exactly one Telegram send for the card"
    tcard = tcards[0]
    tversions = [v.content or "" for v in tcard.history] + [tcard.content or ""]
    tprogress = [progress_of(v) for v in tversions]
    assert tprogress == sorted(tprogress), tprogress
    assert "Partially complete" in (tcard.content or "")
    treplies = [m for m in telegram.messages(CHAT) if m.reply_to is not None]
    assert len(treplies) == 3
    assert all(m.reply_to and m.reply_to.message_id == tcard.message_id for m in treplies)
    assert any("GPU <b>out</b> of memory" in (m.content or "") for m in treplies)


async def test_one_card_per_run_edits_forward_only_with_thread_replies(
    start_relay: Callable[..., Awaitable[Client]],
    fake_slack: FakeSlack,
    fake_telegram: FakeTelegram,
) -> None:
    client = await start_relay()
    assert await post(client, started()) == 202
    statuses = [await post(client, progress(k)) for k in ORDER]
    assert statuses.count(200) == 1  # the repeated step 3 is a duplicate
    assert await post(client, finished()) == 202
    await settled(client)
    await check_run(fake_slack, fake_telegram)


async def test_card_survives_a_restart_between_progress_events(
    start_relay: Callable[..., Awaitable[Client]],
    fake_slack: FakeSlack,
    fake_telegram: FakeTelegram,
) -> None:
    first = await start_relay()
    await post(first, started())
    for k in ORDER[:8]:
        await post(first, progress(k))
    await settled(first)
    await first.close()

    second = await start_relay()
    for k in ORDER[8:]:
        await post(second, progress(k))
    await post(second, finished())
    await settled(second)
    await check_run(fake_slack, fake_telegram)


async def test_coalescing_sends_at_most_one_edit_per_interval_and_the_final_state(
    start_relay: Callable[..., Awaitable[Client]],
    fake_slack: FakeSlack,
    fake_telegram: FakeTelegram,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Delivery on a clock that moves only when told: an hour ahead of the receiver's, so every
    # accepted job is due at once, and edits can happen only when the test moves it on.
    clock = FakeClock(time.time() + 3600)

    def on_clock(*args: Any, **kwargs: Any) -> Dispatcher:
        return Dispatcher(*args, **{**kwargs, "clock": clock})

    monkeypatch.setattr("relay.app.Dispatcher", on_clock)
    client = await start_relay(interval="400ms")
    first_edit = clock.now() + 0.4  # the card is posted now
    second_edit = first_edit + 0.4
    await post(client, started())
    await settled(client)

    def edits() -> tuple[int, int]:
        slack, telegram = slack_card(fake_slack)[0], telegram_card(fake_telegram)[0]
        return len(slack.history), len(telegram.history)

    # Ten quick updates: each is put off to the card's interval or superseded by a newer one.
    for k in range(1, 11):
        await post(client, progress(k))
    await sleeping_until(client, clock, first_edit)
    assert edits() == (0, 0)
    clock.advance_to(first_edit)
    await settled(client)
    assert edits() == (1, 1)

    # Ten more and the finish: again one edit, at the next interval, showing the final state.
    for k in range(11, 21):
        await post(client, progress(k))
    await post(client, finished())
    await sleeping_until(client, clock, second_edit)
    assert edits() == (1, 1)
    clock.advance_to(second_edit)
    await settled(client)
    assert edits() == (2, 2)

    card = slack_card(fake_slack)[0]
    assert progress_of(card_versions_slack(card)[1]) == 5  # step 10's, the newest of the ten
    assert "Partially complete" in card.text


async def test_older_state_arriving_late_never_overwrites_the_card(
    start_relay: Callable[..., Awaitable[Client]],
    fake_slack: FakeSlack,
    fake_telegram: FakeTelegram,
) -> None:
    client = await start_relay()
    await post(client, started())
    await post(client, finished())
    await settled(client)
    before = slack_card(fake_slack)[0]
    edits = len(before.history)
    await post(client, progress(9))  # late and older: must not show
    await settled(client)
    after = slack_card(fake_slack)[0]
    assert len(after.history) == edits
    assert "Partially complete" in after.text


def test_a_slack_reply_shows_node_text_literally_and_links_only_its_url() -> None:
    hostile = "> *SECURITY NOTICE:* sign in at https://slack-login.evil.example/auth @here"
    reply = Reply("n1", "node <!channel>", hostile, "https://storage.example.com/o.mp4", True)
    text = render_reply("slack", reply, Message(text=""), Limits()).text
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "*SECURITY" not in text  # the asterisks are look-alikes, not bold
    assert "https://slack-login" not in text and "@here" not in text  # not linked by Slack
    assert "\n>" not in text  # no quote
    assert text.endswith("<https://storage.example.com/o.mp4|Download>")


def test_an_email_reply_has_a_plain_text_part_and_an_html_part() -> None:
    reply = Reply(
        "n1", "Node <n1> failed", "GPU & memory", "https://storage.example.com/o.mp4", True
    )
    message = render_reply("email", reply, Message(text="", subject="Run failed"), Limits())
    assert message.text == "❌ Node <n1> failed\nGPU & memory\nhttps://storage.example.com/o.mp4"
    assert message.html == (
        "❌ <b>Node &lt;n1&gt; failed</b><br>GPU &amp; memory<br>"
        '<a href="https://storage.example.com/o.mp4">Download</a>'
    )
    assert message.subject == "Run failed"


CARD_ROUTE = Route(
    index=0, name="cards", match=Matcher(), exclude=Matcher(), channels=("c",), template=None,
    stop=False, mode="card", thread=True, broadcast_failures=False, card_interval=0.0,
)  # fmt: skip


class CardBook:
    """The store calls a card job makes, kept in memory."""

    def __init__(self) -> None:
        self.states: dict[tuple[str, str], str] = {}
        self.refs: dict[tuple[str, str], tuple[str, str]] = {}

    async def get_card_state(self, run_id: str, channel: str) -> str | None:
        return self.states.get((run_id, channel))

    async def put_card_state(self, run_id: str, channel: str, state: str) -> None:
        self.states[(run_id, channel)] = state

    async def get_ref(self, run_id: str, channel: str) -> tuple[str, str] | None:
        return self.refs.get((run_id, channel))

    async def put_ref(self, run_id: str, channel: str, channel_id: str, message_id: str) -> None:
        self.refs[(run_id, channel)] = (channel_id, message_id)

    async def has_newer(self, job: Job) -> bool:
        return False


class Recorder:
    """A channel of any render kind that can edit and reply, and records what it is sent."""

    limits: ClassVar[Limits] = Limits(text=4000)

    def __init__(self, render_kind: str) -> None:
        self.render_kind = render_kind
        self.cards: list[str] = []
        self.replies: list[Message] = []

    async def send(self, message: Message) -> MessageRef:
        self.cards.append(message.text)
        return MessageRef("c", f"m{len(self.cards)}")

    async def edit(self, ref: MessageRef, message: Message) -> None:
        self.cards.append(message.text)

    async def reply(
        self, ref: MessageRef, message: Message, *, broadcast: bool = False
    ) -> MessageRef | None:
        self.replies.append(message)
        return None


async def card_job(channel: Recorder, payload: dict[str, Any], book: CardBook) -> Done | Later:
    event = Event.model_validate(payload)
    job = Job(
        id="j", event_id="ev", run_id=event.run_id, channel="c", route="cards", template=None,
        mode="card", state="claimed", attempts=0, created_at=0.0, next_attempt_at=0.0,
        last_error=None, body=b"", run_started_at=None,
    )  # fmt: skip

    async def render() -> Message:
        return Renderer({}, {}).render(
            channel.render_kind, None, event, event_id="ev", route="cards", channel="c",
            limits=channel.limits, run_started_at=None, now=0.0,
        )  # fmt: skip

    async def send(call: Awaitable[Any]) -> Any:
        return await call

    return await run_card_job(job, event, CARD_ROUTE, channel, book, render, 0.0, send)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", list(KINDS))
async def test_a_card_follows_the_run_unless_its_kind_sends_start_and_finish_only(
    kind: str,
) -> None:
    channel, book = Recorder(kind), CardBook()
    await card_job(channel, started(), book)
    during = await card_job(channel, progress(4), book)
    await card_job(channel, finished(), book)
    if KINDS[kind].live_cards:
        assert during == Done("card updated", channel.cards[1]) and len(channel.cards) == 3
    else:
        assert during == Done(f"skipped: {kind} cards mail at start and finish only")
        assert len(channel.cards) == 2


async def test_a_registered_kind_writes_its_card_and_replies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(KINDS, "shout", ShoutKind())
    channel, book = Recorder("shout"), CardBook()
    await card_job(channel, started(), book)
    await card_job(channel, progress(15), book)  # node-7 fails
    assert channel.cards[0].startswith("🚀 STARTED!! AGENT ")
    assert [reply.text for reply in channel.replies] == [
        "❌ NODE NODE-7 FAILED!! GPU <B>OUT</B> OF MEMORY"
    ]
