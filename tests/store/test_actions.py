"""Chat actions in the store, on every backend: one-time claims (``claim_once``) and the audit
(``record_action`` / ``list_actions``), and how each backend forgets old ones."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from relay.store import RedisStore, SQLiteStore, Store
from relay.store.base import ActionRecord
from tests.conftest import wait_until
from tests.redis_server import RedisServer
from tests.store.conftest import StoreFactory

KEY = "action:" + "ab" * 32


def row(at: float, run_id: str = "run-1", **changes: Any) -> ActionRecord:
    """An audit row at ``at`` on ``run_id``; ``changes`` replace its other fields."""
    base = ActionRecord(
        at, "resume", run_id, "slack", "U024BE7LH", "alice", "done", "", "failed-runs", "team"
    )
    return replace(base, **changes)


async def test_a_key_is_claimed_once(store: Store) -> None:
    assert await store.claim_once(KEY, ttl=60) is True
    assert await store.claim_once(KEY, ttl=60) is False
    assert await store.claim_once(KEY + "x", ttl=60) is True


async def test_of_concurrent_claims_on_two_store_objects_exactly_one_wins(
    make_store: StoreFactory,
) -> None:
    first, second = make_store(), make_store()
    await first.open()
    await second.open()
    try:
        results = await asyncio.gather(
            *(
                (first if n % 2 else second).claim_once(f"{KEY}-{round_}", ttl=60)
                for round_ in range(3)
                for n in range(10)
            )
        )
    finally:
        await first.close()
        await second.close()
    for round_ in range(3):
        assert results[round_ * 10 : round_ * 10 + 10].count(True) == 1


async def test_an_expired_claim_can_be_taken_again(store: Store) -> None:
    assert await store.claim_once(KEY, ttl=0.05)

    async def free() -> bool:
        return await store.claim_once(KEY, ttl=60)

    await wait_until(free)
    assert await store.claim_once(KEY, ttl=60) is False


async def test_sqlite_claims_expire_on_the_clock_passed(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "relay.db", sync="normal")
    await store.open()
    try:
        assert await store.claim_once(KEY, ttl=10, now=1000.0)
        assert not await store.claim_once(KEY, ttl=10, now=1009.9)
        assert await store.claim_once(KEY, ttl=10, now=1010.0)
        assert not await store.claim_once(KEY, ttl=10, now=1015.0)
    finally:
        await store.close()


async def test_actions_are_listed_newest_first_per_run_and_in_all(store: Store) -> None:
    t0 = time.time()
    await store.record_action(row(t0, "run-1", result="refused", user_name=None))
    await store.record_action(row(t0 + 2, "run-2", action="cancel", source="telegram"))
    await store.record_action(row(t0 + 1, "run-1", result="failed", detail="Mosaic said no"))
    await store.record_action(row(t0 + 1, "run-1", result="duplicate"))  # same time: later first

    every = await store.list_actions()
    assert [(r.run_id, r.result) for r in every] == [
        ("run-2", "done"),
        ("run-1", "duplicate"),
        ("run-1", "failed"),
        ("run-1", "refused"),
    ]
    assert every[0] == row(t0 + 2, "run-2", action="cancel", source="telegram")
    assert every[2] == row(t0 + 1, "run-1", result="failed", detail="Mosaic said no")
    assert every[3].user_name is None
    assert [r.result for r in await store.list_actions(run_id="run-1", limit=2)] == [
        "duplicate",
        "failed",
    ]
    assert await store.list_actions(run_id="run-3") == []
    assert await store.list_actions(limit=0) == []


async def test_actions_are_shared_and_survive_a_restart(make_store: StoreFactory) -> None:
    t0 = time.time()
    first = make_store()
    await first.open()
    await first.record_action(row(t0))
    await first.close()

    again = make_store()
    await again.open()
    try:
        assert await again.list_actions(run_id="run-1") == [row(t0)]
    finally:
        await again.close()


async def test_prune_forgets_actions_from_before_the_cutoff(store: Store) -> None:
    t0 = time.time()
    await store.record_action(row(t0 - 500, "run-1", result="refused"))
    await store.record_action(row(t0 - 100, "run-1"))
    await store.record_action(row(t0 - 400, "run-2"))

    await store.prune(older_than=t0 - 300)

    assert await store.list_actions() == [row(t0 - 100, "run-1")]
    assert await store.list_actions(run_id="run-1") == [row(t0 - 100, "run-1")]
    assert await store.list_actions(run_id="run-2") == []


async def test_sqlite_prune_deletes_expired_claims_only(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "relay.db", sync="normal")
    await store.open()
    try:
        assert await store.claim_once("over", ttl=10, now=1000.0)
        assert await store.claim_once("live", ttl=3600)
        await store.prune(older_than=0.0)
        assert not await store.claim_once("live", ttl=3600)
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "relay.db") as conn:
        assert [r[0] for r in conn.execute("SELECT key FROM claims")] == ["live"]


async def test_redis_drops_actions_a_retention_before_the_newest_and_expires_claims(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    store = RedisStore(
        redis_server.url, namespace=redis_namespace, sync=redis_server.sync, retention=3600
    )
    await store.open()
    try:
        t0 = time.time()
        await store.record_action(row(t0 - 4000))
        await store.record_action(row(t0))
        assert await store.list_actions() == [row(t0)]
        assert await store.claim_once(KEY, ttl=60)
    finally:
        await store.close()
    with redis_server.client() as client:
        assert 0 < client.pttl(f"{{{redis_namespace}}}:once:{KEY}") <= 60_000
        assert 0 < client.pttl(f"{{{redis_namespace}}}:actions:run-1") <= 3600_000
