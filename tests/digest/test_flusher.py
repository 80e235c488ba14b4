"""The flusher against every store backend: one message per window, whatever happens between
taking a window's events and dropping its key."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from relay.config import load_config
from relay.digest.entries import Digest
from relay.digest.flusher import SETTLE, Flusher, digest_dedup_key
from relay.digest.groups import digest_group, flush_key
from relay.events import Event
from relay.ingest import Ingest, canonical_json
from relay.runtime import Runtime
from relay.store import Store
from relay.store.base import Job
from tests.conftest import sample
from tests.fakes.clock import FakeClock
from tests.store.conftest import StoreFactory

HOUR = 3600.0
T0 = 1_800_000_000.0  # on the hour (UTC)

CONFIG = """\
auth: {allow_unsigned: true}
channels:
  team: {type: file, path: team.jsonl}
routes:
  - name: hourly
    match: {flag: RUN_FINISHED}
    to: [team]
    mode: digest
    digest: {every: 1h%s}
"""


def runtime(tmp_path: Path, extra: str = "") -> Runtime:
    path = tmp_path / "relay.yaml"
    path.write_text(CONFIG % extra)
    return Runtime.build(load_config(path, env={}))


def finished(run: str) -> Event:
    body = sample("run_finished_completed_youtube")
    body["run_id"] = run
    return Event.model_validate(body)


class Rig:
    """A store, the config's runtime, an ingest and a flusher on one fake clock."""

    def __init__(self, store: Store, runtime: Runtime, clock: FakeClock) -> None:
        self.store = store
        self.runtime = runtime
        self.clock = clock
        self.ingest = Ingest(store, lambda: self.runtime.router, lambda: None, clock=clock.now)
        self.flusher = self.new_flusher()

    def new_flusher(self) -> Flusher:
        return Flusher(self.store, lambda: self.runtime, lambda: None, clock=self.clock)

    async def hold(self, *runs: str, at: float | None = None) -> None:
        for run in runs:
            event = finished(run)
            await self.ingest.event(event, canonical_json(event.model_dump()), at=at)

    async def digests(self) -> list[tuple[Job, Digest]]:
        """Every digest job stored, claimed and marked sent in order (one group's are in line)."""
        found: list[tuple[Job, Digest]] = []
        later = self.clock.now() + 1000 * HOUR
        while jobs := await self.store.claim(now=later, lease=60, limit=100):
            for job in jobs:
                found.append((job, Digest.model_validate_json(job.body)))
                await self.store.mark_sent(job.id, now=later)
        return found


@pytest.fixture
async def rig(store: Store, tmp_path: Path) -> Rig:
    return Rig(store, runtime(tmp_path), FakeClock(T0 + 60))


def runs(digest: Digest) -> list[str]:
    return [entry.run_id for entry in digest.entries]


async def test_a_window_is_one_digest_job_with_its_events(rig: Rig) -> None:
    await rig.hold("a", "b")
    assert await rig.flusher.run_once(rig.clock.now()) == T0 + HOUR + SETTLE
    assert await rig.digests() == []

    assert await rig.flusher.run_once(T0 + HOUR + SETTLE) == math.inf  # nothing held
    [(job, digest)] = await rig.digests()
    assert (job.channel, job.route, job.mode) == ("team", "hourly", "digest")
    assert (digest.kind, digest.start, digest.end, digest.late) == ("digest", T0, T0 + HOUR, False)
    assert runs(digest) == ["a", "b"]
    assert await rig.store.held_groups() == []
    assert await rig.store.taken_keys() == []


async def test_a_flush_cut_short_after_storing_its_digest_sends_no_second_one(rig: Rig) -> None:
    await rig.hold("a", "b")
    end = T0 + HOUR
    key = flush_key(digest_group("hourly", "team"), end)
    await rig.store.take_held(digest_group("hourly", "team"), before=end, key=key)
    # It stored the digest, then died before dropping the key.
    await rig.flusher.run_once(end + SETTLE)
    [(_, digest)] = await rig.digests()
    await rig.store.take_held(digest_group("hourly", "team"), before=end, key=key)
    assert await rig.store.known_dedup_keys([digest_dedup_key(key)])

    await rig.new_flusher().run_once(end + SETTLE)
    assert await rig.digests() == []
    assert runs(digest) == ["a", "b"]


async def test_a_straggler_of_a_sent_window_gets_a_message_of_its_own(rig: Rig) -> None:
    await rig.hold("a")
    end = T0 + HOUR
    await rig.flusher.run_once(end + SETTLE)
    # Accepted just before the end, but stored after the window was sent (a slow write).
    await rig.hold("late", at=end - 0.5)
    await rig.flusher.run_once(end + SETTLE + 1)
    sent = [runs(digest) for _, digest in await rig.digests()]
    assert sent == [["a"], ["late"]]


async def test_two_flushers_on_one_store_send_each_window_once(
    rig: Rig, make_store: StoreFactory
) -> None:
    other_store = make_store()
    await other_store.open()
    try:
        other = Flusher(other_store, lambda: rig.runtime, lambda: None, clock=rig.clock)
        for hour in range(3):
            await rig.hold(*(f"run-{hour}-{n}" for n in range(5)), at=T0 + hour * HOUR + 60)
            due = T0 + (hour + 1) * HOUR + SETTLE
            await asyncio.gather(rig.flusher.run_once(due), other.run_once(due))
        sent = [runs(digest) for _, digest in await rig.digests()]
        assert sent == [[f"run-{hour}-{n}" for n in range(5)] for hour in range(3)]
    finally:
        await other_store.close()


async def test_empty_windows_send_a_message_only_when_asked(store: Store, tmp_path: Path) -> None:
    clock = FakeClock(T0 + 60)
    quiet = Rig(store, runtime(tmp_path), clock)
    await quiet.flusher.run_once(T0 + HOUR + SETTLE)
    assert await quiet.digests() == []

    chatty = Rig(store, runtime(tmp_path, ", send_empty: true"), clock)
    assert await chatty.flusher.run_once(T0 + HOUR + SETTLE) == T0 + 2 * HOUR + SETTLE
    await chatty.flusher.run_once(T0 + HOUR + SETTLE + 5)
    [(_, digest)] = await chatty.digests()
    assert (digest.entries, digest.end) == ([], T0 + HOUR)


async def test_events_held_by_a_route_since_removed_go_out_at_once(
    rig: Rig, tmp_path: Path
) -> None:
    await rig.hold("a")
    (tmp_path / "relay.yaml").write_text(CONFIG.split("    mode: digest")[0])
    rig.runtime = Runtime.build(load_config(tmp_path / "relay.yaml", env={}))
    await rig.flusher.run_once(rig.clock.now() + SETTLE)
    [(job, digest)] = await rig.digests()
    assert (job.channel, runs(digest)) == ("team", ["a"])

    await rig.hold("b")
    await rig.flusher.run_once(rig.clock.now())  # the route sends each event now: nothing held
    assert await rig.store.held_groups() == []


async def test_events_held_for_a_removed_channel_wait_and_are_warned_about_once(
    rig: Rig, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await rig.hold("a")
    (tmp_path / "relay.yaml").write_text(
        CONFIG.replace("team: {type: file, path: team.jsonl}", "other: {type: file}").replace(
            "to: [team]", "to: [other]"
        )
        % ""
    )
    rig.runtime = Runtime.build(load_config(tmp_path / "relay.yaml", env={}))
    for _ in range(3):
        await rig.flusher.run_once(T0 + 2 * HOUR)
    assert caplog.text.count("have nowhere to go") == 1
    assert await rig.digests() == []
    assert await rig.store.taken_keys() != []  # still there, for when the channel comes back
