"""Dashboard logins in the store (``put_session``/``get_session``/``delete_session``), on every
backend, and how each backend forgets expired ones."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path

from relay.store import RedisStore, SQLiteStore, Store
from tests.redis_server import RedisServer
from tests.store.conftest import StoreFactory

KEY = hashlib.sha256(b"a session id").hexdigest()
DATA = '{"csrf": "c", "expires": 1.0, "token": "00"}'


def now() -> float:
    """Near the real time: Redis drops a session at ``expires_at`` by its own clock."""
    return time.time()


async def test_a_session_is_kept_until_it_expires(store: Store) -> None:
    t0 = now()
    await store.put_session(KEY, DATA, expires_at=t0 + 60)

    assert await store.get_session(KEY, now=t0) == DATA
    assert await store.get_session(KEY, now=t0 + 59.9) == DATA
    assert await store.get_session(KEY, now=t0 + 60) is None
    assert await store.get_session(KEY, now=t0 + 3600) is None


async def test_unknown_and_deleted_sessions_are_none(store: Store) -> None:
    t0 = now()
    assert await store.get_session(KEY, now=t0) is None
    await store.delete_session(KEY)  # absent: nothing happens
    await store.put_session(KEY, DATA, expires_at=t0 + 60)
    await store.put_session("f" * 64, "other", expires_at=t0 + 60)

    await store.delete_session(KEY)

    assert await store.get_session(KEY, now=t0) is None
    assert await store.get_session("f" * 64, now=t0) == "other"


async def test_put_replaces_a_session(store: Store) -> None:
    t0 = now()
    await store.put_session(KEY, DATA, expires_at=t0 + 1)
    await store.put_session(KEY, "new", expires_at=t0 + 60)

    assert await store.get_session(KEY, now=t0 + 30) == "new"


async def test_every_store_instance_on_the_same_data_sees_a_session(
    make_store: StoreFactory,
) -> None:
    first, second = make_store(), make_store()
    await first.open()
    await second.open()
    try:
        t0 = now()
        await first.put_session(KEY, DATA, expires_at=t0 + 60)
        assert await second.get_session(KEY, now=t0) == DATA
        await second.delete_session(KEY)
        assert await first.get_session(KEY, now=t0) is None
    finally:
        await first.close()
        await second.close()


async def test_sessions_survive_a_restart(make_store: StoreFactory) -> None:
    t0 = now()
    store = make_store()
    await store.open()
    await store.put_session(KEY, DATA, expires_at=t0 + 60)
    await store.close()

    again = make_store()
    await again.open()
    try:
        assert await again.get_session(KEY, now=t0) == DATA
    finally:
        await again.close()


async def test_sqlite_prune_forgets_sessions_ended_before_the_cutoff(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "relay.db", sync="normal")
    await store.open()
    try:
        await store.put_session("a" * 64, "ended", expires_at=100.0)
        await store.put_session("b" * 64, "ends later", expires_at=300.0)

        await store.prune(older_than=200.0)
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "relay.db") as conn:
        rows = conn.execute("SELECT key, data FROM sessions").fetchall()
    assert rows == [("b" * 64, "ends later")]


async def test_redis_keeps_a_session_under_the_prefix_with_its_expiry(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    store = RedisStore(redis_server.url, namespace=redis_namespace, sync=redis_server.sync)
    await store.open()
    try:
        t0 = now()
        await store.put_session(KEY, DATA, expires_at=t0 + 3600)
        await store.put_session("e" * 64, DATA, expires_at=t0 - 1)  # already over
    finally:
        await store.close()
    with redis_server.client() as client:
        name = f"{{{redis_namespace}}}:session:{KEY}"
        assert 0 < client.pttl(name) <= 3600 * 1000
        assert not client.exists(f"{{{redis_namespace}}}:session:{'e' * 64}")
