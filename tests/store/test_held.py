"""Held events (digests, quiet hours), run against every backend in ``conftest.FACTORIES``."""

from __future__ import annotations

import asyncio
import math
import sqlite3
from pathlib import Path

from relay.store import JobSpec, RedisStore, SQLiteStore, Store
from relay.store.base import HeldEntry, HeldGroup
from tests.redis_server import RedisServer
from tests.store.conftest import new_event, specs

T0 = 1000.0
GROUP = '["daily", "team-slack", 1700000000]'
"""Groups and keys are opaque text: JSON here, with quotes, spaces and brackets."""


def held(entry: str, group: str = GROUP, channel: str = "team-slack") -> JobSpec:
    return JobSpec(channel, "daily", template="digest", hold=group, entry=entry.encode())


async def hold_events(store: Store, *ats: float, group: str = GROUP) -> None:
    """One event per time in ``ats``, each held in ``group`` with entry ``e<at>``."""
    for at in ats:
        await store.accept(new_event(f"e{at:g}", at=at), [held(f"e{at:g}", group)])


def entries(*names: str, at: dict[str, float]) -> list[HeldEntry]:
    return [HeldEntry(at[name], name.encode()) for name in names]


# --- accept -------------------------------------------------------------------------------------


async def test_a_held_spec_makes_no_job_but_the_others_do(store: Store) -> None:
    event = new_event("e1", at=T0)

    result = await store.accept(event, [held("one"), JobSpec("tg", "failed")])

    assert (result.event_id, result.duplicate) == ("e1", False)
    assert [(row.channel, row.state, row.count) for row in await store.status()] == [
        ("tg", "pending", 1)
    ]
    (job,) = await store.claim(now=T0, lease=30.0, limit=10)
    assert (job.channel, job.event_id) == ("tg", "e1")
    assert await store.held_groups() == [HeldGroup(GROUP, "team-slack", "daily", "digest", 1, T0)]


async def test_an_event_held_everywhere_is_still_stored_and_deduplicated(store: Store) -> None:
    await store.accept(new_event("e1", at=T0, dedup_key="k"), [held("one")])

    again = await store.accept(new_event("e2", at=T0 + 1, dedup_key="k"), [held("two")])

    assert (again.event_id, again.duplicate) == ("e1", True)
    assert await store.status() == []
    assert await store.known_dedup_keys(["k"]) == {"k"}
    assert [group.count for group in await store.held_groups()] == [1]
    assert await store.take_held(GROUP, before=T0 + 10, key="k1") == [HeldEntry(T0, b"one")]


async def test_held_groups_count_untaken_events_by_their_oldest(store: Store) -> None:
    await hold_events(store, T0 + 5, T0, T0 + 9)
    await store.accept(
        new_event("q1", at=T0 + 2),
        [JobSpec("ops", "quiet", hold="quiet:ops", entry=b"{}")],
    )
    await store.accept(new_event("q2", at=T0 + 3), [held("x", group="quiet:ops", channel="x")])

    groups = await store.held_groups()

    assert groups == [
        HeldGroup(GROUP, "team-slack", "daily", "digest", 3, T0),
        HeldGroup("quiet:ops", "ops", "quiet", None, 2, T0 + 2),
    ]


async def test_no_held_groups_when_nothing_is_held(store: Store) -> None:
    await store.accept(new_event("e1"), specs("slack"))

    assert await store.held_groups() == []


# --- take and drop ------------------------------------------------------------------------------


async def test_take_returns_the_groups_events_before_the_bound_in_acceptance_order(
    store: Store,
) -> None:
    at = {"e1": T0 + 2, "e2": T0, "e3": T0 + 2, "e4": T0 + 10}
    for name, when in at.items():
        await store.accept(new_event(name, at=when), [held(name)])
    await store.accept(new_event("other", at=T0), [held("other", group="other-group")])

    taken = await store.take_held(GROUP, before=T0 + 10, key="flush-1")

    assert taken == entries("e2", "e1", "e3", at=at)  # by time, then as accepted
    assert await store.held_groups() == [
        HeldGroup(GROUP, "team-slack", "daily", "digest", 1, T0 + 10),
        HeldGroup("other-group", "team-slack", "daily", "digest", 1, T0),
    ]
    assert await store.take_held(GROUP, before=math.inf, key="flush-2") == entries("e4", at=at)


async def test_taking_again_with_the_same_key_returns_the_same_events_and_no_new_ones(
    store: Store,
) -> None:
    at = {"e1": T0, "e2": T0 + 1, "e3": T0 + 2}
    await store.accept(new_event("e1", at=T0), [held("e1")])
    await store.accept(new_event("e2", at=T0 + 1), [held("e2")])
    first = await store.take_held(GROUP, before=T0 + 5, key="flush-1")
    await store.accept(new_event("e3", at=T0 + 2), [held("e3")])  # late, still before the bound

    again = await store.take_held(GROUP, before=T0 + 5, key="flush-1")

    assert first == again == entries("e1", "e2", at=at)
    assert [group.count for group in await store.held_groups()] == [1]
    assert await store.take_held(GROUP, before=T0 + 5, key="flush-2") == entries("e3", at=at)


async def test_taking_nothing_is_empty_and_leaves_later_events_to_the_next_take(
    store: Store,
) -> None:
    assert await store.take_held(GROUP, before=T0, key="flush-1") == []
    await hold_events(store, T0)

    assert await store.take_held(GROUP, before=T0, key="flush-1") == []  # not before T0
    assert await store.take_held(GROUP, before=T0 + 1, key="flush-1") == [HeldEntry(T0, b"e1000")]
    assert await store.held_groups() == []


async def test_dropped_events_are_gone_and_the_key_takes_anew(store: Store) -> None:
    await hold_events(store, T0, T0 + 1)
    await store.take_held(GROUP, before=T0 + 1, key="flush-1")

    await store.drop_held("flush-1")
    await store.drop_held("flush-1")  # again: nothing to drop
    await store.drop_held("never-taken")

    assert await store.take_held(GROUP, before=T0 + 2, key="flush-1") == [
        HeldEntry(T0 + 1, b"e1001")
    ]


async def test_a_dropped_key_leaves_the_other_keys_events(store: Store) -> None:
    await hold_events(store, T0)
    await hold_events(store, T0 + 1, group="other-group")
    await store.take_held(GROUP, before=T0 + 2, key="flush-1")
    await store.take_held("other-group", before=T0 + 2, key="flush-2")

    await store.drop_held("flush-1")

    assert await store.take_held("other-group", before=T0 + 2, key="flush-2") == [
        HeldEntry(T0 + 1, b"e1001")
    ]


async def test_concurrent_takes_of_one_group_share_no_event(store: Store) -> None:
    await hold_events(store, *(T0 + i for i in range(20)))

    results = await asyncio.gather(
        *(store.take_held(GROUP, before=T0 + 100, key=f"flush-{n}") for n in range(5))
    )

    taken = [entry for result in results for entry in result]
    assert sorted(entry.received_at for entry in taken) == [T0 + i for i in range(20)]
    assert sum(1 for result in results if result) == 1


async def test_events_accepted_at_one_time_are_taken_in_acceptance_order(store: Store) -> None:
    for n in range(12):  # past 9 and 10: no ordering of ids as text
        await store.accept(new_event(f"e{n}", at=T0), [held(f"e{n}")])

    taken = await store.take_held(GROUP, before=T0 + 1, key="k")

    assert [entry.entry.decode() for entry in taken] == [f"e{n}" for n in range(12)]


async def test_taken_keys_are_those_not_dropped(store: Store) -> None:
    await hold_events(store, T0)
    await hold_events(store, T0 + 1, group="other-group")
    await hold_events(store, T0 + 2, group="third")
    assert await store.taken_keys() == []
    await store.take_held(GROUP, before=T0 + 5, key='["flush", 2]')
    await store.take_held("other-group", before=T0 + 5, key='["flush", 1]')
    await store.take_held("third", before=T0 + 5, key="flush-3")
    await store.take_held("empty", before=T0 + 5, key="took-nothing")

    await store.drop_held("flush-3")

    assert await store.taken_keys() == ['["flush", 1]', '["flush", 2]']


async def test_entries_are_kept_byte_for_byte(store: Store) -> None:
    entry = '{"title":"Ünïcode ✓ <b>&amp;</b>","nul":"\\u0000"}'.encode() + b"\x00\xff"
    await store.accept(new_event("e1", at=T0), [JobSpec("c", "r", hold=GROUP, entry=entry)])
    await store.accept(new_event("e2", at=T0), [JobSpec("c", "r", hold=GROUP)])

    assert await store.take_held(GROUP, before=T0 + 1, key="k") == [
        HeldEntry(T0, entry),
        HeldEntry(T0, b""),
    ]


# --- prune --------------------------------------------------------------------------------------


async def test_prune_keeps_events_not_taken_and_deletes_their_stored_events(store: Store) -> None:
    await hold_events(store, T0, T0 + 1)

    assert await store.prune(older_than=T0 + 1000) == 2  # the events: nothing refers to them

    assert [group.count for group in await store.held_groups()] == [2]
    assert await store.take_held(GROUP, before=T0 + 2, key="k") == [
        HeldEntry(T0, b"e1000"),
        HeldEntry(T0 + 1, b"e1001"),
    ]


# --- the stale-run watch ------------------------------------------------------------------------


async def test_a_digest_event_never_makes_a_quiet_run(store: Store) -> None:
    digest = new_event("d1", run_id="digest:daily", at=T0, flag="DIGEST", status="digest")
    await store.accept(digest, specs("team-slack"))
    await store.accept(new_event("e1", run_id="real", at=T0), [held("e1")])

    assert [run.run_id for run in await store.quiet_runs(before=T0 + 50)] == ["real"]
    (job,) = await store.claim(now=T0, lease=30.0, limit=10)
    assert (job.event_id, job.run_id) == ("d1", "digest:daily")


# --- SQLite only --------------------------------------------------------------------------------


async def test_sqlite_prune_deletes_taken_events_never_dropped_after_the_retention(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "relay.db")
    await store.open()
    try:
        await hold_events(store, T0, T0 + 1, T0 + 50)
        await store.take_held(GROUP, before=T0 + 10, key="crashed")
        await store.prune(older_than=T0 + 10)  # taken at T0 + 10: not older
        assert len(await store.take_held(GROUP, before=T0 + 10, key="crashed")) == 2

        await store.prune(older_than=T0 + 11)

        assert await store.taken_keys() == []
        assert await store.take_held(GROUP, before=T0 + 10, key="crashed") == []
        assert [group.count for group in await store.held_groups()] == [1]
    finally:
        await store.close()


async def test_a_sqlite_file_from_before_held_events_opens_and_holds(tmp_path: Path) -> None:
    path = tmp_path / "relay.db"
    store = SQLiteStore(path)
    await store.open()
    await store.accept(new_event("old", at=T0), specs("slack"))
    await store.close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE held")  # with its indexes: the file as the previous version made it
    conn.commit()
    conn.close()

    reopened = SQLiteStore(path)
    await reopened.open()
    try:
        await hold_events(reopened, T0 + 1)
        assert [group.count for group in await reopened.held_groups()] == [1]
        assert [row.count for row in await reopened.status()] == [1]
    finally:
        await reopened.close()


# --- Redis only ---------------------------------------------------------------------------------


async def test_redis_forgets_a_taken_key_whose_events_expired(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    store = RedisStore(redis_server.url, namespace=redis_namespace, sync=redis_server.sync)
    await store.open()
    try:
        await hold_events(store, T0)
        await store.take_held(GROUP, before=T0 + 1, key="crashed")
        await store.take_held("nothing", before=T0 + 1, key="empty")
        with redis_server.client() as client:
            ttl = client.pttl(f"{store.prefix}taken:crashed")
            assert 0 < ttl <= store.retention * 1000  # expires a retention after the take
            client.delete(f"{store.prefix}taken:crashed")  # as if it expired

        assert await store.taken_keys() == []
        assert await store.take_held(GROUP, before=T0 + 1, key="crashed") == []
    finally:
        await store.close()
