"""The executor: grant, allow list, once, Mosaic's API, audit and the thread, with stand-ins for
the chat (a recording surface and channel) and a recording Mosaic client."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from relay.actions.buttons import buttons_for
from relay.actions.model import Press, Presser
from relay.actions.perform import Actions
from relay.channels.base import Message, MessageRef
from relay.config import load_config
from relay.events import Event
from relay.mosaic.client import MosaicError
from relay.runtime import Runtime
from relay.store import SQLiteStore
from relay.store.base import Job
from tests.conftest import sample

NOW = 1_800_000_000.0
CONFIG = """\
auth: {allow_unsigned: true}
mosaic: {api_key: mk_test_key}
actions:
  slack: {signing_secret: slack-signing-secret}
  allow:
    resume: {slack_users: [U0ALLOWED], telegram_users: [77]}
    cancel: {slack_users: [U0ALLOWED]}
    rerun: {slack_users: [U0ALLOWED]}
channels:
  team: {type: slack, token: xoxb-test-token, channel: "#video-alerts"}
  hook: {type: slack, webhook_url: "https://hooks.slack.com/services/T/B/x"}
routes:
  - name: failed
    match: {flag: RUN_FINISHED}
    to: [team, hook]
    actions: [resume, rerun]
  - name: cards
    match: {flag: RUN_STARTED}
    to: [team]
    mode: card
    actions: [cancel]
"""


class Surface:
    def __init__(self) -> None:
        self.answers: list[str] = []
        self.removed = 0

    async def answer(self, text: str) -> None:
        self.answers.append(text)

    async def remove_buttons(self) -> None:
        self.removed += 1


class Thread:
    """Stands in for the Slack channel: records replies."""

    def __init__(self) -> None:
        self.render_kind = "slack"
        self.replies: list[tuple[MessageRef, str]] = []

    async def reply(self, ref: MessageRef, message: Message, *, broadcast: bool = False) -> None:
        self.replies.append((ref, message.text))


class Mosaic:
    """Stands in for ``MosaicClient``: records calls; ``fail`` makes them fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.fail: str | None = None
        self.entered = asyncio.Event()
        self.release: asyncio.Event | None = None

    async def _call(self, name: str, arg: Any) -> None:
        self.calls.append((name, arg))
        self.entered.set()
        if self.release is not None:
            await self.release.wait()
        if self.fail:
            raise MosaicError(self.fail)

    async def resume_run(self, run_id: str) -> None:
        await self._call("resume", run_id)

    async def cancel_run(self, run_id: str) -> None:
        await self._call("cancel", run_id)

    async def start_run(self, agent_id: str, **inputs: Any) -> str:
        await self._call("rerun", (agent_id, inputs))
        return "new-run-1"

    async def close(self) -> None:
        return None


class Rig:
    def __init__(self, store: SQLiteStore, runtime: Runtime) -> None:
        self.store = store
        self.runtime = runtime
        self.mosaic = Mosaic()
        self.thread = Thread()
        runtime.channels["team"] = self.thread  # type: ignore[assignment]
        self.actions = Actions(store, lambda: runtime, lambda _: self.mosaic, clock=lambda: NOW)  # type: ignore[arg-type, return-value]

    async def buttons(
        self, event: Event, route: str = "failed", channel: str = "team"
    ) -> dict[str, str]:
        job = Job(
            "1",
            "event-1",
            event.run_id,
            channel,
            route,
            None,
            "post",
            "inflight",
            0,
            NOW,
            NOW,
            None,
            b"",
            None,
        )
        found = await buttons_for(self.store, self.runtime, job, event, NOW)
        return {button.action: button.value for button in found}

    async def press(
        self, value: str, user: str = "U0ALLOWED", surface: Surface | None = None
    ) -> Surface:
        surface = surface or Surface()
        presser = Presser("slack", user, "alice")
        self.actions.accept(
            Press(value, presser, MessageRef("C0VIDEO", "1700000000.000100"), surface)
        )
        await self.actions.stop(10)
        return surface


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    path = tmp_path / "relay.yaml"
    path.write_text(CONFIG)
    store = SQLiteStore(tmp_path / "relay.db")
    await store.open()
    yield Rig(store, Runtime.build(load_config(path, env={})))
    await store.close()


def failed() -> Event:
    return Event.model_validate(sample("run_finished_failed"))


async def test_buttons_fit_the_run_and_the_channel(rig: Rig) -> None:
    event = failed()
    assert set(await rig.buttons(event)) == {"resume", "rerun"}
    no_inputs = event.model_copy(update={"inputs": []})
    assert set(await rig.buttons(no_inputs)) == {"resume"}  # nothing to re-run with
    assert await rig.buttons(event, channel="hook") == {}  # an incoming webhook takes no presses
    started = Event.model_validate(sample("run_started_youtube"))
    assert set(await rig.buttons(started, route="cards")) == {"cancel"}
    assert all(len(value) <= 64 for value in (await rig.buttons(event)).values())


async def test_an_allowed_press_calls_mosaic_once_and_tells_the_thread(rig: Rig) -> None:
    event = failed()
    value = (await rig.buttons(event))["resume"]
    surface = await rig.press(value)
    assert rig.mosaic.calls == [("resume", event.run_id)]
    assert surface.answers == [f"Resume of run {event.run_id[:8]} under way…"]
    assert rig.thread.replies == [
        (MessageRef("C0VIDEO", "1700000000.000100"), "▶️ Resumed by <@U0ALLOWED>")
    ]
    assert surface.removed == 1
    [record] = await rig.store.list_actions(run_id=event.run_id)
    assert (record.action, record.user_id, record.result) == ("resume", "U0ALLOWED", "done")
    assert set(await rig.buttons(event)) == {"rerun"}  # resume is done: not offered again


async def test_a_double_click_calls_mosaic_once(rig: Rig) -> None:
    value = (await rig.buttons(failed()))["resume"]
    rig.mosaic.release = asyncio.Event()
    first, second = Surface(), Surface()
    presser = Presser("slack", "U0ALLOWED", "alice")
    for surface in (first, second):
        rig.actions.accept(Press(value, presser, None, surface))
    await rig.mosaic.entered.wait()
    rig.mosaic.release.set()
    await rig.actions.stop(10)
    assert len(rig.mosaic.calls) == 1
    assert (
        sorted(first.answers + second.answers)[0] == "Already done: this button was pressed before."
    )
    results = sorted(r.result for r in await rig.store.list_actions())
    assert results == ["done", "duplicate"]


async def test_a_press_by_someone_not_allowed_changes_nothing(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    event = failed()
    value = (await rig.buttons(event))["resume"]
    with caplog.at_level(logging.WARNING, logger="relay.actions"):
        surface = await rig.press(value, user="U0INTRUDER")
    assert rig.mosaic.calls == [] and rig.thread.replies == [] and surface.removed == 0
    assert surface.answers == ["You are not allowed to resume runs."]
    assert "slack user U0INTRUDER may not resume run" in caplog.text
    [record] = await rig.store.list_actions()
    assert (record.user_id, record.result) == ("U0INTRUDER", "refused")
    await rig.press(value)  # the button still works for someone allowed
    assert rig.mosaic.calls == [("resume", event.run_id)]


@pytest.mark.parametrize("value", ["ma1:" + "A" * 22, "ma1:short", "resume", ""])
async def test_an_unknown_button_is_expired(rig: Rig, value: str) -> None:
    surface = await rig.press(value)
    assert surface.answers == ["This button has expired."] and rig.mosaic.calls == []


async def test_a_failed_call_is_told_and_the_buttons_stay(rig: Rig) -> None:
    value = (await rig.buttons(failed()))["resume"]
    rig.mosaic.fail = "Mosaic answered 409: run is not resumable"
    surface = await rig.press(value)
    assert rig.thread.replies[0][1] == (
        "⚠️ Resume by <@U0ALLOWED> failed: Mosaic answered 409: run is not resumable"
    )
    assert surface.removed == 0
    [record] = await rig.store.list_actions()
    assert record.result == "failed" and "409" in record.detail


async def test_a_rerun_starts_the_agent_on_the_runs_inputs(rig: Rig) -> None:
    event = failed()
    value = (await rig.buttons(event))["rerun"]
    await rig.press(value)
    urls = [i.video_url for i in event.inputs if i.video_url]
    assert rig.mosaic.calls == [("rerun", (event.agent_id, {"video_urls": urls}))]
    assert rig.thread.replies[0][1] == "🔁 Re-run started by <@U0ALLOWED> (new run new-run-1)"


async def test_a_telegram_pressers_name_is_escaped_in_the_thread(rig: Rig) -> None:
    rig.thread.render_kind = "telegram"
    value = (await rig.buttons(failed()))["resume"]
    presser = Presser("telegram", "77", "<b>eve</b> & co")
    rig.actions.accept(Press(value, presser, MessageRef("-100123", "5"), Surface()))
    await rig.actions.stop(10)
    assert rig.thread.replies[0][1] == "▶️ Resumed by @&lt;b&gt;eve&lt;/b&gt; &amp; co"
