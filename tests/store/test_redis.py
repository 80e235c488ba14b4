"""What only the Redis store does: replicas sharing one queue, crashes, restarts, shared limits."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from relay.store import Job, RedisStore, StoreError, open_store
from relay.store.redis_scripts import GROUP
from relay.store.redis_writer import OrderedWriter
from tests.conftest import wait_until
from tests.delivery.test_ratelimit import assert_one_bucket_shared
from tests.redis_server import RedisServer, start_server
from tests.store.conftest import new_event, specs

T0 = 1000.0
LEASE = 30.0


def replica(server: RedisServer, namespace: str, name: str) -> RedisStore:
    return RedisStore(server.url, namespace=namespace, sync=server.sync, consumer=name)


@pytest.fixture
async def replicas(
    redis_server: RedisServer, redis_namespace: str
) -> AsyncIterator[tuple[RedisStore, RedisStore]]:
    a = replica(redis_server, redis_namespace, "replica-a")
    b = replica(redis_server, redis_namespace, "replica-b")
    await a.open()
    await b.open()
    yield a, b
    await a.close()
    await b.close()


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def holders(raw: aioredis.Redis, store: RedisStore) -> list[str]:
    """The consumer holding each pending entry of the job stream."""
    entries = await raw.xpending_range(store.prefix + "jobs", GROUP, "-", "+", 1000)
    return sorted(entry["consumer"].decode() for entry in entries)


# --- replicas sharing one queue ------------------------------------------------------------------


async def test_two_replicas_never_hold_one_job_or_one_runs_channel_at_once(
    replicas: tuple[RedisStore, RedisStore],
) -> None:
    a, b = replicas
    order: dict[tuple[str, str], list[str]] = {}
    for i in range(40):
        event = new_event(f"e{i:02}", run_id=f"r{i % 8}", at=T0 + i)
        await a.accept(event, specs("slack", "tg"))
        for channel in ("slack", "tg"):
            order.setdefault((event.run_id, channel), []).append(event.event_id)

    first = await a.claim(now=T0 + 100, lease=LEASE, limit=5)
    rest = await b.claim(now=T0 + 100, lease=LEASE, limit=100)
    assert len(first) == 5
    assert len(rest) == 16 - 5
    assert not {job.id for job in first} & {job.id for job in rest}
    for job in first + rest:
        await (a if job in first else b).release(job.id)

    claimed: set[str] = set()
    busy: set[tuple[str, str]] = set()
    delivered: dict[tuple[str, str], list[str]] = {}

    async def work(store: RedisStore) -> None:
        while len(claimed) < 80:
            for job in await store.claim(now=T0 + 100, lease=LEASE, limit=3):
                key = (job.run_id, job.channel)
                assert job.id not in claimed, "claimed twice"
                assert key not in busy, "two jobs of one run and channel in flight"
                claimed.add(job.id)
                busy.add(key)
                await asyncio.sleep(0)
                delivered.setdefault(key, []).append(job.event_id)
                busy.discard(key)
                await store.mark_sent(job.id, now=T0 + 100)
            await asyncio.sleep(0)

    await asyncio.wait_for(asyncio.gather(work(a), work(b)), timeout=10)

    assert delivered == order
    assert {(s.channel, s.state, s.count) for s in await a.status()} == {
        ("slack", "sent", 40),
        ("tg", "sent", 40),
    }


async def test_a_crashed_replicas_jobs_are_reclaimed_after_its_lease(
    replicas: tuple[RedisStore, RedisStore], raw: aioredis.Redis
) -> None:
    a, b = replicas
    for i in range(3):
        await a.accept(new_event(f"e{i}", run_id=f"r{i}", at=time.time()), specs("c"))
    lease = 0.2
    claimed_at = time.time()
    taken = await a.claim(now=claimed_at, lease=lease, limit=10)
    assert len(taken) == 3
    assert await holders(raw, a) == ["replica-a"] * 3
    # replica a now stops without acking anything

    assert await b.claim(now=claimed_at + lease - 0.01, lease=lease, limit=10) == []
    reclaimed: list[Job] = []

    async def b_got_them() -> bool:
        reclaimed.extend(await b.claim(now=time.time(), lease=30.0, limit=10))
        return len(reclaimed) == 3

    await wait_until(b_got_them)

    assert sorted(job.id for job in reclaimed) == sorted(job.id for job in taken)
    assert await holders(raw, b) == ["replica-b"] * 3
    for job in reclaimed:
        await b.mark_sent(job.id, now=time.time())
    assert await holders(raw, b) == []
    assert await raw.xlen(b.prefix + "jobs") == 0


async def test_marks_from_a_replica_that_lost_its_lease_change_nothing(
    replicas: tuple[RedisStore, RedisStore],
) -> None:
    a, b = replicas
    await a.accept(new_event("e0", run_id="r", at=T0), specs("c"))
    await a.accept(new_event("e1", run_id="r", at=T0 + 1), specs("c"))
    (stale,) = await a.claim(now=T0, lease=LEASE, limit=10)
    (job,) = await b.claim(now=T0 + LEASE + 1, lease=LEASE, limit=10)
    assert job.id == stale.id

    await a.mark_retry(stale.id, next_attempt_at=T0, error="stale", now=T0 + LEASE + 2)
    await a.mark_dead(stale.id, error="stale", now=T0)
    await a.release(stale.id)

    assert [(s.state, s.count) for s in await b.status()] == [("inflight", 1), ("pending", 1)]
    assert await b.dead_letters() == []
    assert await a.claim(now=T0 + LEASE + 2, lease=LEASE, limit=10) == []
    await b.mark_sent(job.id, now=T0 + LEASE + 2)
    (nxt,) = await a.claim(now=T0 + LEASE + 2, lease=LEASE, limit=10)
    assert nxt.event_id == "e1"


async def test_a_send_reported_by_the_previous_holder_still_counts(
    replicas: tuple[RedisStore, RedisStore],
) -> None:
    a, b = replicas
    await a.accept(new_event("e0", at=T0), specs("c"))
    (stale,) = await a.claim(now=T0, lease=LEASE, limit=10)
    await b.claim(now=T0 + LEASE + 1, lease=LEASE, limit=10)

    await a.mark_sent(stale.id, now=T0 + LEASE + 2)
    await b.mark_retry(stale.id, next_attempt_at=T0, error="too late", now=T0 + LEASE + 2)

    assert [(s.state, s.count) for s in await b.status()] == [("sent", 1)]
    assert await b.next_due_at() is None


async def test_close_leaves_the_group_only_without_held_jobs(
    replicas: tuple[RedisStore, RedisStore], raw: aioredis.Redis
) -> None:
    a, b = replicas
    await a.accept(new_event("e0", run_id="r0"), specs("c"))
    await a.accept(new_event("e1", run_id="r1"), specs("c"))
    await a.claim(now=T0, lease=LEASE, limit=1)
    (job,) = await b.claim(now=T0, lease=LEASE, limit=1)
    await b.mark_sent(job.id, now=T0)

    await a.close()
    await b.close()

    consumers = await raw.xinfo_consumers(a.prefix + "jobs", GROUP)
    assert [c["name"].decode() for c in consumers] == ["replica-a"]


async def test_prune_forgets_the_consumers_of_replicas_gone(
    replicas: tuple[RedisStore, RedisStore], raw: aioredis.Redis
) -> None:
    a, b = replicas
    await a.accept(new_event("e0"), specs("c"))
    await a.claim(now=T0, lease=LEASE, limit=1)
    await a.close()
    (job,) = await b.claim(now=T0 + LEASE + 1, lease=LEASE, limit=1)

    await b.prune(older_than=T0)
    consumers = await raw.xinfo_consumers(b.prefix + "jobs", GROUP)
    assert [c["name"].decode() for c in consumers] == ["replica-b"]

    await b.mark_sent(job.id, now=T0 + LEASE + 1)
    await b.prune(older_than=T0)
    assert await raw.xinfo_consumers(b.prefix + "jobs", GROUP) == []


async def test_claim_looks_past_excluded_channels(replicas: tuple[RedisStore, RedisStore]) -> None:
    a, _ = replicas
    for i in range(5):
        await a.accept(new_event(f"s{i}", run_id=f"r{i}", at=T0 + i), specs("slow"))
    await a.accept(new_event("f", run_id="rf", at=T0 + 10), specs("fast"))

    jobs = await a.claim(now=T0 + 20, lease=LEASE, limit=2, exclude_channels=["slow"])

    assert [job.event_id for job in jobs] == ["f"]
    assert len(await a.claim(now=T0 + 20, lease=LEASE, limit=10)) == 5


async def test_namespaces_do_not_see_each_other(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    one = replica(redis_server, f"{redis_namespace}-1", "one")
    two = replica(redis_server, f"{redis_namespace}-2", "two")
    await one.open()
    await two.open()
    try:
        await one.accept(new_event("e1", dedup_key="k"), specs("c"))
        assert not (await two.accept(new_event("e2", dedup_key="k"), [])).duplicate
        assert [job.event_id for job in await two.claim(now=T0, lease=1, limit=9)] == []
        assert [job.event_id for job in await one.claim(now=T0, lease=1, limit=9)] == ["e1"]
    finally:
        for store in (one, two):
            raw = aioredis.Redis.from_url(redis_server.url)
            keys = [key async for key in raw.scan_iter(match=store.prefix + "*")]
            await raw.delete(*keys)
            await raw.aclose()
            await store.close()


async def test_nothing_is_left_behind_once_delivered_and_pruned(
    replicas: tuple[RedisStore, RedisStore], raw: aioredis.Redis
) -> None:
    a, b = replicas
    for i in range(6):
        await a.accept(new_event(f"e{i}", run_id=f"r{i % 2}", at=T0 + i), specs("x", "y"))
    await a.put_ref("r0", "x", "C1", "ts1")
    await a.put_card_state("r0", "x", '{"n": 1}')
    await a.acquire_rate("x", 100.0, 1, T0)
    await a.accept(new_event("t", run_id="r2", at=T0, dedup_key=None), [])
    dead = await a.claim(now=T0 + 10, lease=LEASE, limit=1)
    await a.mark_dead(dead[0].id, error="x", now=T0 + 10)
    await a.replay(dead[0].id, now=T0 + 10)
    while jobs := await b.claim(now=T0 + 10, lease=LEASE, limit=3):
        for job in jobs:
            await b.mark_sent(job.id, now=T0 + 10)

    assert await a.prune(older_than=T0 + 100) == 7

    keys = {key.decode() async for key in raw.scan_iter(match=a.prefix + "*")}
    rate = a.prefix + "rate:x"
    assert keys - {rate} == {a.prefix + name for name in ("meta", "seq", "jobs", "dead")}
    assert await raw.xlen(a.prefix + "jobs") == 0
    assert await raw.xlen(a.prefix + "dead") == 0
    assert await a.get_ref("r0", "x") is None


async def test_the_writer_runs_calls_in_order_and_fails_only_the_failed_ones(
    raw: aioredis.Redis, redis_namespace: str
) -> None:
    key = f"{{{redis_namespace}}}:order"
    script = raw.register_script(
        "if ARGV[2] == 'bad' then return redis.error_reply('bad call') end "
        "return redis.call('RPUSH', ARGV[1], ARGV[2])"
    )
    writer = OrderedWriter(raw, lambda exc: StoreError(f"wrapped: {exc}"))
    values = [str(i) for i in range(300)]
    values[7] = "bad"

    results = await asyncio.gather(
        *(writer.call(script, [key, value]) for value in values), return_exceptions=True
    )

    assert isinstance(results[7], StoreError)
    assert "bad call" in str(results[7])
    assert [r for i, r in enumerate(results) if i != 7] == list(range(1, 300))
    assert [v.decode() for v in await raw.lrange(key, 0, -1)] == values[:7] + values[8:]


# --- durability ------------------------------------------------------------------------------------


async def test_accepted_events_survive_a_redis_crash(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    store = RedisStore(server.url, sync="full")
    try:
        await store.open()
        events = [new_event(f"e{i}", run_id=f"r{i % 5}", at=T0 + i) for i in range(50)]
        await asyncio.gather(*(store.accept(e, specs("c", "d")) for e in events))
        claimed = await store.claim(now=T0 + 100, lease=LEASE, limit=1)
        await store.mark_dead(claimed[0].id, error="gone", now=T0 + 100)

        server.kill()
        server.restart()

        for event in events:
            again = new_event("again", dedup_key=event.dedup_key)
            assert (await store.accept(again, [])).event_id == event.event_id
        assert [job.id for job in await store.dead_letters()] == [claimed[0].id]
        assert {(s.channel, s.state, s.count) for s in await store.status()} == {
            ("c", "dead", 1),
            ("c", "pending", 49),
            ("d", "pending", 50),
        }
        heads = await store.claim(now=T0 + 100, lease=LEASE, limit=100)
        assert len(heads) == 10
        await store.mark_sent(heads[0].id, now=T0 + 100)
    finally:
        await store.close()
        server.stop()


@pytest.mark.parametrize(
    "setting",
    [
        ("--appendfsync", "everysec"),
        ("--appendonly", "no"),
        ("--maxmemory-policy", "allkeys-lru"),
    ],
)
async def test_sync_full_refuses_a_redis_that_may_lose_writes(
    tmp_path: Path, setting: tuple[str, str]
) -> None:
    server = start_server(tmp_path, *setting)
    try:
        with pytest.raises(StoreError, match="appendfsync always") as info:
            await RedisStore(server.url, sync="full").open()
        assert f"{setting[0][2:]} {setting[1]}" in str(info.value)
        relaxed = RedisStore(server.url, sync="normal")
        await relaxed.open()
        await relaxed.ping()
        await relaxed.close()
    finally:
        server.stop()


# --- shared rate limits -------------------------------------------------------------------------


async def test_replicas_share_one_token_bucket(replicas: tuple[RedisStore, RedisStore]) -> None:
    await assert_one_bucket_shared(*replicas, T0)


async def test_a_replica_with_a_slow_clock_cannot_refill_the_bucket(
    replicas: tuple[RedisStore, RedisStore],
) -> None:
    a, b = replicas
    assert await a.acquire_rate("k", 1.0, 1, T0 + 10) == 0.0

    assert await b.acquire_rate("k", 1.0, 1, T0) == pytest.approx(1.0)
    assert await a.acquire_rate("k", 1.0, 1, T0 + 11) == 0.0


async def test_acquire_rate_refuses_a_bucket_that_never_fills(
    replicas: tuple[RedisStore, RedisStore],
) -> None:
    with pytest.raises(ValueError, match="per_second"):
        await replicas[0].acquire_rate("k", 0.0, 1, T0)


# --- opening ---------------------------------------------------------------------------------------


async def test_create_false_refuses_a_namespace_without_a_store(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    missing = RedisStore(redis_server.url, namespace=redis_namespace, create=False, sync="normal")
    with pytest.raises(StoreError, match="holds no store"):
        await missing.open()
    created = RedisStore(redis_server.url, namespace=redis_namespace, sync="normal")
    await created.open()
    await created.close()

    await missing.open()
    await missing.ping()
    await missing.close()


async def test_errors_and_repr_never_show_the_password() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        unused_port = sock.getsockname()[1]
    store = RedisStore(f"redis://user:hunter2@127.0.0.1:{unused_port}/0", timeout=1.0)

    with pytest.raises(StoreError, match="cannot open the redis store") as info:
        await store.open()

    assert "hunter2" not in str(info.value)
    assert "hunter2" not in repr(store)
    with pytest.raises(StoreError, match="not open"):
        await store.ping()


def test_open_store_makes_a_redis_store_without_connecting() -> None:
    store = open_store(
        "redis://:hunter2@127.0.0.1:1/3", Path("."), sync="normal", create=False, retention=60
    )

    assert isinstance(store, RedisStore)
    assert (store.sync, store.create, store.retention, store.namespace) == (
        "normal",
        False,
        60,
        "relay",
    )
    assert isinstance(open_store("rediss://example.com:6380/0", Path("."), sync="full"), RedisStore)


@pytest.mark.parametrize("namespace", ["", "a:b", "{x}", "x" * 65])
def test_a_namespace_must_stay_inside_its_key_prefix(namespace: str) -> None:
    with pytest.raises(StoreError, match="namespace"):
        RedisStore("redis://127.0.0.1:1/0", namespace=namespace)


async def test_a_lease_is_held_by_one_replica_until_it_expires(
    replicas: tuple[RedisStore, RedisStore],
) -> None:
    a, b = replicas
    assert await a.take_lease("reconcile", ttl=0.2)
    assert not await b.take_lease("reconcile", ttl=0.2)
    assert not await a.take_lease("reconcile", ttl=0.2)  # a pass per interval, whoever asks
    await wait_until(lambda: b.take_lease("reconcile", ttl=60.0), timeout=5.0)
    assert not await a.take_lease("reconcile", ttl=60.0)
