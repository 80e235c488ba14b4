"""The SQLite store's run views (``list_runs``, ``get_run``): aggregates, filters, cursor."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from relay.store import JobSpec, NewEvent, SQLiteStore, sqlite_runs
from relay.store.base import RunFilter, StoreInspector
from relay.store.sqlite_runs import SCAN_BOUND, parse_cursor

T0 = 1000.0
TITLE = '<b>"Hi" & bye</b>'


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "relay.db", sync="normal")
    await opened.open()
    yield opened
    await opened.close()


def event(
    n: str, *, run_id: str, at: float, flag: str = "RUN_PROGRESS", status: str = "running",
    agent_id: str = "agent-1", **fields: Any,
) -> NewEvent:  # fmt: skip
    payload = {"flag": flag, "run_id": run_id, "agent_id": agent_id, "status": status, "n": n}
    body = json.dumps({**payload, **fields}, sort_keys=True).encode()
    key = None if flag == "TEST" else f"key-{n}"
    return NewEvent(n, key, body, flag, run_id, agent_id, status, at)


async def accept(store: SQLiteStore, new: NewEvent, *channels: str) -> None:
    await store.accept(new, [JobSpec(channel, "all") for channel in channels])


YOUTUBE = {"type": "youtube", "video_title": TITLE}


async def a_run(store: SQLiteStore, run_id: str = "run-1", at: float = T0) -> None:
    """Started (youtube), two progress events, finished failed with two outputs."""
    await accept(store, event(f"{run_id}-s", run_id=run_id, at=at, flag="RUN_STARTED",
                              triggered_by=YOUTUBE), "slack")  # fmt: skip
    for i in (1, 2):
        await accept(store, event(f"{run_id}-p{i}", run_id=run_id, at=at + i), "slack")
    outputs = [{"video_url": "https://x/1.mp4"}, {"video_url": "https://x/2.mp4"}]
    await accept(store, event(f"{run_id}-f", run_id=run_id, at=at + 30, flag="RUN_FINISHED",
                              status="failed", outputs=outputs, triggered_by=YOUTUBE), "slack")  # fmt: skip


async def test_sqlite_store_is_an_inspector_of_runs(store: SQLiteStore) -> None:
    assert isinstance(store, StoreInspector)


async def test_a_finished_run_record(store: SQLiteStore) -> None:
    await a_run(store)
    page = await store.list_runs()
    assert page.older is None
    [run] = page.runs
    assert (run.run_id, run.agent_id, run.trigger, run.title) == (
        "run-1",
        "agent-1",
        "youtube",
        TITLE,
    )
    assert (run.started_at, run.start_seen_at, run.last_event_at) == (T0, T0, T0 + 30)
    assert (run.status, run.ended, run.ended_at) == ("failed", True, T0 + 30)
    assert (run.outputs, run.events, run.health) == (2, 4, "pending")
    assert run.duration(now=T0 + 1e6) == 30
    assert parse_cursor(run.cursor) == (T0, "run-1")


async def test_a_running_run_lasts_until_now_and_has_no_start_seen(store: SQLiteStore) -> None:
    await accept(store, event("p", run_id="r", at=T0 + 5))
    [run] = (await store.list_runs()).runs
    assert (run.status, run.ended, run.start_seen_at, run.trigger, run.title) == (
        "running", False, None, "none", None,
    )  # fmt: skip
    assert run.duration(now=T0 + 65) == 60
    assert run.health == "none"  # no route matched: nothing to deliver


async def test_the_final_status_is_the_newest_ends(store: SQLiteStore) -> None:
    await accept(store, event("f", run_id="r", at=T0, flag="RUN_FINISHED", status="completed"))
    await accept(store, event("late", run_id="r", at=T0 + 9))  # a late progress event
    [run] = (await store.list_runs()).runs
    assert (run.status, run.ended, run.ended_at, run.last_event_at) == (
        "completed", True, T0, T0 + 9,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("outcomes", "health"),
    [
        (["sent", "sent"], "sent"),
        (["sent", "pending"], "pending"),
        (["retry", "pending"], "retrying"),
        (["dead", "retry"], "dead"),
    ],
)
async def test_health_is_the_worst_of_its_jobs(
    store: SQLiteStore, outcomes: list[str], health: str
) -> None:
    channels = ("a", "b")
    await accept(store, event("x", run_id="r", at=T0), *channels)
    jobs = await store.claim(now=T0, lease=60, limit=10)
    by_channel = {job.channel: job.id for job in jobs}
    for channel, outcome in zip(channels, outcomes, strict=True):
        job_id = by_channel[channel]
        if outcome == "sent":
            await store.mark_sent(job_id, now=T0)
        elif outcome == "retry":
            await store.mark_retry(job_id, next_attempt_at=T0 + 9, error="503", now=T0)
        elif outcome == "dead":
            await store.mark_dead(job_id, error="400", now=T0)
        else:
            await store.release(job_id)
    [run] = (await store.list_runs()).runs
    assert run.health == health
    assert [r.run_id for r in (await store.list_runs(where=RunFilter(delivery=health))).runs] == [
        "r"
    ]
    other = "sent" if health != "sent" else "dead"
    assert (await store.list_runs(where=RunFilter(delivery=other))).runs == []


async def test_test_and_digest_events_are_no_runs(store: SQLiteStore) -> None:
    await a_run(store)
    await accept(store, event("t", run_id="test-run", at=T0 + 100, flag="TEST", status="test"), "x")
    await accept(store, event("d", run_id="digest:ops", at=T0 + 101, flag="DIGEST"), "x")
    await accept(store, event("t2", run_id="run-1", at=T0 + 102, flag="TEST", status="test"))
    [run] = (await store.list_runs()).runs
    assert (run.run_id, run.events, run.last_event_at) == ("run-1", 4, T0 + 30)
    assert await store.get_run("test-run") is None
    assert await store.get_run("digest:ops") is None
    detail = await store.get_run("run-1")
    assert detail is not None
    assert [e.flag for e in detail.events].count("TEST") == 0


async def test_newest_first_with_a_cursor(store: SQLiteStore) -> None:
    for i in range(7):
        await accept(store, event(f"e{i}", run_id=f"run-{i}", at=T0 + i))
    seen: list[str] = []
    before = None
    while True:
        page = await store.list_runs(limit=3, before=before)
        seen += [run.run_id for run in page.runs]
        if page.older is None:
            break
        before = page.older
    assert seen == [f"run-{i}" for i in reversed(range(7))]


async def test_runs_started_at_the_same_time_are_all_listed(store: SQLiteStore) -> None:
    for i in range(5):
        await accept(store, event(f"e{i}", run_id=f"run-{i}", at=T0))
    first = await store.list_runs(limit=2)
    assert first.older is not None
    rest = await store.list_runs(limit=10, before=first.older)
    names = [r.run_id for r in first.runs + rest.runs]
    assert sorted(names) == [f"run-{i}" for i in range(5)] and len(set(names)) == 5


async def test_a_bad_cursor_lists_nothing(store: SQLiteStore) -> None:
    await a_run(store)
    for cursor in ("nope", "nan:run-1", "1000.0"):
        assert (await store.list_runs(before=cursor)).runs == []


async def test_filters_on_agent_status_and_trigger(store: SQLiteStore) -> None:
    await a_run(store, "yt")
    await accept(store, event("m", run_id="man", at=T0 + 50, agent_id="agent-2", flag="RUN_STARTED",
                              triggered_by={"type": "manual"}))  # fmt: skip

    async def ids(where: RunFilter) -> list[str]:
        return [run.run_id for run in (await store.list_runs(where=where)).runs]

    assert await ids(RunFilter(agent_id="agent-2")) == ["man"]
    assert await ids(RunFilter(status="failed")) == ["yt"]
    assert await ids(RunFilter(status="running")) == ["man"]
    assert await ids(RunFilter(trigger="manual")) == ["man"]
    assert await ids(RunFilter(trigger="youtube", agent_id="agent-1")) == ["yt"]
    assert await ids(RunFilter(trigger="schedule")) == []


async def test_a_filtered_search_stops_after_a_bound_and_can_go_on(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("relay.store.sqlite_runs.SCAN_BOUND", 5)
    await accept(store, event("old", run_id="wanted", at=T0, agent_id="agent-9"))
    for i in range(8):
        await accept(store, event(f"e{i}", run_id=f"other-{i}", at=T0 + 1 + i))
    first = await store.list_runs(where=RunFilter(agent_id="agent-9"))
    assert first.runs == [] and first.older is not None
    second = await store.list_runs(where=RunFilter(agent_id="agent-9"), before=first.older)
    assert [run.run_id for run in second.runs] == ["wanted"] and second.older is None
    assert SCAN_BOUND >= 1000  # the module's real bound


async def test_the_listing_walks_runs_by_their_index(store: SQLiteStore, tmp_path: Path) -> None:
    await a_run(store)
    with sqlite3.connect(tmp_path / "relay.db") as conn:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT run_id, started_at, start_seen_at FROM runs "
            "WHERE (started_at, run_id) < (?, ?) ORDER BY started_at DESC, run_id DESC LIMIT 5",
            (T0, "x"),
        ).fetchall()
    text = " ".join(str(row[-1]) for row in plan)
    assert "runs_started" in text and "TEMP B-TREE" not in text


async def test_a_run_in_detail(store: SQLiteStore) -> None:
    await a_run(store)
    [job] = await store.claim(now=T0, lease=60, limit=1)
    await store.mark_sent(job.id, now=T0 + 1, rendered="Run started")
    detail = await store.get_run("run-1")
    assert detail is not None
    assert detail.record.run_id == "run-1" and detail.events_left_out == 0
    assert [e.event_id for e in detail.events] == ["run-1-s", "run-1-p1", "run-1-p2", "run-1-f"]
    first = detail.events[0]
    assert first.body is not None and json.loads(first.body)["triggered_by"]["video_title"] == TITLE
    assert [a.rendered for a in first.jobs[0].log] == ["Run started"]
    assert detail.cards == ()
    assert await store.get_run("nope") is None


async def test_a_runs_live_card_per_channel(store: SQLiteStore) -> None:
    new = event("s", run_id="r", at=T0, flag="RUN_STARTED")
    await store.accept(new, [JobSpec("slack", "cards", mode="card"), JobSpec("mail", "all")])
    await store.put_ref("r", "slack", "C123", "1700000000.000100")
    await store.put_card_state("r", "slack", '{"rank":[0,1,1]}')
    jobs = {job.channel: job for job in await store.claim(now=T0, lease=60, limit=5)}
    await store.mark_sent(jobs["slack"].id, now=T0 + 2, rendered="card v1")
    await store.mark_sent(jobs["mail"].id, now=T0 + 2, rendered="a mail")
    detail = await store.get_run("r")
    assert detail is not None
    [card] = detail.cards
    assert (card.channel, card.channel_id, card.message_id) == (
        "slack",
        "C123",
        "1700000000.000100",
    )
    assert (card.state, card.text, card.sent_at) == ('{"rank":[0,1,1]}', "card v1", T0 + 2)


async def test_a_long_run_keeps_its_first_events(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("relay.store.sqlite_runs.MAX_TIMELINE", 3)
    for i in range(5):
        await accept(store, event(f"e{i}", run_id="r", at=T0 + i))
    detail = await store.get_run("r")
    assert detail is not None
    assert [e.event_id for e in detail.events] == ["e0", "e1", "e2"]
    assert (detail.events_left_out, detail.record.events) == (2, 5)


async def test_a_store_made_before_the_runs_index_gets_it(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    for _ in range(2):
        store = SQLiteStore(path, sync="normal")
        await store.open()
        await store.close()
        with sqlite3.connect(path) as conn:
            names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
            conn.execute("DROP INDEX runs_started")
        assert "runs_started" in names


@pytest.mark.parametrize(
    "name", ["_AGGREGATES_SQL", "_HEALTH_SQL", "_CARD_CHANNELS_SQL", "_CARD_TEXT_SQL"]
)
async def test_a_runs_aggregates_use_the_indexes(
    store: SQLiteStore, tmp_path: Path, name: str
) -> None:
    """No query walks every event or job (a store may hold millions)."""
    sql = str(getattr(sqlite_runs, name)).replace("{}", "?")
    with sqlite3.connect(tmp_path / "relay.db") as conn:
        args = ("run-1",) * sql.count("?")
        plan = " | ".join(str(row[-1]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))
    assert "events_run" in plan, plan
    assert "SCAN" not in plan, plan
