"""The SQLite store's attempt log and the read views the UI uses (``StoreInspector``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.store import JobSpec, NewEvent, SQLiteStore
from relay.store.base import (
    DELIVERY_STATES,
    Counts,
    EventFilter,
    Store,
    StoreInspector,
    delivery_state,
)
from relay.store.sqlite import MAX_LOG

T0 = 1000.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "relay.db", sync="normal")
    await opened.open()
    yield opened
    await opened.close()


def event(
    event_id: str,
    *,
    run_id: str = "run-1",
    at: float = T0,
    flag: str = "RUN_FINISHED",
    status: str = "failed",
    agent_id: str = "agent-1",
    trigger: object = None,
) -> NewEvent:
    payload = {
        "flag": flag,
        "run_id": run_id,
        "agent_id": agent_id,
        "status": status,
        "n": event_id,
    }
    if trigger is not None:
        payload["triggered_by"] = trigger
    body = json.dumps(payload, sort_keys=True).encode()
    return NewEvent(event_id, f"key-{event_id}", body, flag, run_id, agent_id, status, at)


async def accept(store: SQLiteStore, new: NewEvent, *channels: str) -> None:
    await store.accept(new, [JobSpec(channel, f"route-{channel}") for channel in channels])


async def claim(store: SQLiteStore, channel: str, now: float = T0) -> str:
    jobs = await store.claim(now=now, lease=30.0, limit=100)
    wanted = [job for job in jobs if job.channel == channel]
    for job in jobs:
        if job not in wanted[:1]:
            await store.release(job.id)
    assert wanted, f"no due job on {channel}"
    return wanted[0].id


def test_the_sqlite_store_is_an_inspector(tmp_path: Path) -> None:
    store: Store = SQLiteStore(tmp_path / "x.db")
    assert isinstance(store, StoreInspector)


def test_delivery_states() -> None:
    assert delivery_state("sent", 3, "x") == "sent"
    assert delivery_state("dead", 0, "x") == "dead"
    assert delivery_state("pending", 0, None) == "pending"
    assert delivery_state("inflight", 0, None) == "pending"
    assert delivery_state("pending", 1, "503") == "retrying"
    assert delivery_state("inflight", 0, "rate limited (HTTP 429)") == "retrying"


async def test_every_outcome_is_logged_with_time_and_error(store: SQLiteStore) -> None:
    await accept(store, event("e1"), "slack")
    job_id = await claim(store, "slack")
    await store.mark_retry(job_id, next_attempt_at=T0, error="HTTP 503", now=T0)
    job_id = await claim(store, "slack")
    await store.mark_retry(
        job_id, next_attempt_at=T0, error="rate limited (HTTP 429)", now=T0, count_attempt=False
    )
    job_id = await claim(store, "slack")
    await store.mark_dead(job_id, error="HTTP 400: invalid_auth", now=T0 + 5)
    await store.replay(job_id, now=T0 + 6)
    job_id = await claim(store, "slack", now=T0 + 6)
    await store.mark_sent(job_id, now=T0 + 7, rendered="❌ Failed: <run>")

    record = await store.get_event("e1")
    assert record is not None
    (job,) = record.jobs
    assert [(a.outcome, a.error) for a in job.log] == [
        ("retry", "HTTP 503"),
        ("wait", "rate limited (HTTP 429)"),
        ("dead", "HTTP 400: invalid_auth"),
        ("replayed", None),
        ("sent", None),
    ]
    assert [a.at for a in job.log][2:] == [T0 + 5, T0 + 6, T0 + 7]
    assert all(a.at > 0 for a in job.log)
    assert job.log[-1].rendered == "❌ Failed: <run>"
    assert job.delivery == "sent" and job.finished_at == T0 + 7


async def test_a_write_that_changes_nothing_logs_nothing(store: SQLiteStore) -> None:
    await accept(store, event("e1"), "slack")
    job_id = await claim(store, "slack")
    await store.mark_sent(job_id, now=T0, rendered="once")
    await store.mark_sent(job_id, now=T0 + 1, rendered="twice")  # already sent
    await store.mark_retry(job_id, next_attempt_at=T0, error="stale worker", now=T0)
    await store.mark_dead(job_id, error="stale worker", now=T0)
    await store.mark_sent("no-such-job", now=T0)
    record = await store.get_event("e1")
    assert record is not None
    assert [(a.outcome, a.rendered) for a in record.jobs[0].log] == [("sent", "once")]


async def test_the_log_keeps_the_newest_entries_of_each_job(store: SQLiteStore) -> None:
    await accept(store, event("e1"), "slack")
    for n in range(MAX_LOG + 5):
        job_id = await claim(store, "slack")
        await store.mark_retry(
            job_id, next_attempt_at=T0, error=f"wait {n}", now=T0, count_attempt=False
        )
    record = await store.get_event("e1")
    assert record is not None
    log = record.jobs[0].log
    assert len(log) == MAX_LOG
    assert log[0].error == "wait 5" and log[-1].error == f"wait {MAX_LOG + 4}"


async def test_prune_drops_the_log_of_pruned_jobs(store: SQLiteStore, tmp_path: Path) -> None:
    await accept(store, event("old", at=T0), "slack")
    await accept(store, event("kept", run_id="run-2", at=T0 + 100), "slack")
    for _ in range(2):
        job_id = await claim(store, "slack", now=T0 + 100)
        await store.mark_sent(job_id, now=T0 + 100, rendered="x")
    assert await store.prune(older_than=T0 + 50) == 1

    def rows() -> int:
        import sqlite3

        with sqlite3.connect(tmp_path / "relay.db") as conn:
            return int(conn.execute("SELECT count(*) FROM attempts").fetchone()[0])

    assert rows() == 1
    assert await store.get_event("old") is None
    kept = await store.get_event("kept")
    assert kept is not None and len(kept.jobs[0].log) == 1


async def test_list_events_newest_first_with_states_per_channel(store: SQLiteStore) -> None:
    await accept(store, event("e1", at=T0), "slack", "mail")
    await accept(store, event("e2", run_id="run-2", at=T0 + 1), "slack")
    await accept(store, event("e3", run_id="run-3", at=T0 + 2))
    slack = await claim(store, "slack")
    await store.mark_sent(slack, now=T0)
    mail = await claim(store, "mail")
    await store.mark_retry(mail, next_attempt_at=T0, error="HTTP 503", now=T0)

    records = await store.list_events()
    assert [r.event_id for r in records] == ["e3", "e2", "e1"]
    assert records[0].jobs == ()
    states = {j.channel: j.delivery for j in records[2].jobs}
    assert states == {"slack": "sent", "mail": "retrying"}
    assert [j.delivery for j in records[1].jobs] == ["pending"]
    assert all(not j.log for r in records for j in r.jobs)
    assert records[0].body is None


async def test_list_events_pages_with_before(store: SQLiteStore) -> None:
    for n in range(5):
        await accept(store, event(f"e{n}", run_id=f"run-{n}", at=T0 + n))
    first = await store.list_events(limit=2)
    assert [r.event_id for r in first] == ["e4", "e3"]
    second = await store.list_events(limit=2, before=first[-1].cursor)
    assert [r.event_id for r in second] == ["e2", "e1"]
    last = await store.list_events(limit=2, before=second[-1].cursor)
    assert [r.event_id for r in last] == ["e0"]


async def test_list_events_filters(store: SQLiteStore) -> None:
    await accept(store, event("a", flag="RUN_STARTED", status="running", agent_id="x"), "slack")
    await accept(store, event("b", run_id="run-2", agent_id="y"), "slack")
    await accept(store, event("c", run_id="run-3", status="completed"), "slack")
    job_id = await claim(store, "slack")  # a's job: the oldest head
    await store.mark_dead(job_id, error="HTTP 404", now=T0)

    async def ids(**where: str) -> list[str]:
        return [r.event_id for r in await store.list_events(where=EventFilter(**where))]

    assert await ids(flag="RUN_STARTED") == ["a"]
    assert await ids(status="failed") == ["b"]
    assert await ids(agent_id="y") == ["b"]
    assert await ids(run_id="run-3") == ["c"]
    assert await ids(delivery="dead") == ["a"]
    assert await ids(delivery="pending") == ["c", "b"]
    assert await ids(delivery="sent") == []
    assert await ids(delivery="no-such-state") == []
    assert await ids(flag="RUN_FINISHED", status="completed") == ["c"]
    assert await ids(flag="RUN_FINISHED", agent_id="x") == []


async def test_trigger_and_title_come_from_the_payload(store: SQLiteStore) -> None:
    title = '<script>alert("x")</script> «ünïcode» 🎬'
    await accept(store, event("yt", trigger={"type": "youtube", "video_title": title}))
    await accept(store, event("odd", run_id="r2", trigger={"type": 7, "video_title": ["x"]}))
    await accept(store, event("flat", run_id="r3", trigger="not an object"))
    await accept(store, event("none", run_id="r4"))
    by_id = {r.event_id: r for r in await store.list_events()}
    assert (by_id["yt"].trigger, by_id["yt"].title) == ("youtube", title)
    for name in ("odd", "flat", "none"):
        assert (by_id[name].trigger, by_id[name].title) == ("none", None)


async def test_get_event_has_the_payload_and_every_job(store: SQLiteStore) -> None:
    new = event("e1")
    await accept(store, new, "slack", "mail")
    record = await store.get_event("e1")
    assert record is not None
    assert record.body == new.body
    assert (record.flag, record.status, record.run_id, record.agent_id) == (
        "RUN_FINISHED",
        "failed",
        "run-1",
        "agent-1",
    )
    assert [(j.channel, j.route, j.delivery) for j in record.jobs] == [
        ("slack", "route-slack", "pending"),
        ("mail", "route-mail", "pending"),
    ]
    assert await store.get_event("nope") is None


async def test_counts_agree_with_the_states_of_the_jobs(store: SQLiteStore) -> None:
    assert await store.counts() == Counts(received=0, sent=0, pending=0, retrying=0, dead=0)
    await accept(store, event("e1"), "a", "b", "c", "d")
    await accept(store, event("e2", run_id="run-2"), "a")
    for channel, action in (("a", "sent"), ("b", "retry"), ("c", "dead")):
        job_id = await claim(store, channel)
        if action == "sent":
            await store.mark_sent(job_id, now=T0)
        elif action == "retry":
            await store.mark_retry(job_id, next_attempt_at=T0 + 60, error="503", now=T0)
        else:
            await store.mark_dead(job_id, error="404", now=T0)
    counts = await store.counts()
    assert counts == Counts(received=2, sent=1, pending=2, retrying=1, dead=1)

    listed = [j.delivery for r in await store.list_events() for j in r.jobs]
    assert {s: listed.count(s) for s in DELIVERY_STATES} == {
        s: getattr(counts, s) for s in DELIVERY_STATES
    }


async def test_a_body_that_is_not_json_still_lists(store: SQLiteStore) -> None:
    broken = NewEvent("bad", "key-bad", b"{not json", "RUN_STARTED", "r", "a", "running", T0)
    await store.accept(broken, [])
    (record,) = await store.list_events()
    assert (record.event_id, record.trigger, record.title) == ("bad", "none", None)
