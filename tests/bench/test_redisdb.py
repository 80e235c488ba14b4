"""The replicas benchmark's Redis: a database of a shared server that no one else uses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bench.redisdb import DB_KEY, LOCK_KEY, BenchRedis, bench_redis
from tests.redis_server import RedisServer, start_server


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of our own, standing for the shared one at 127.0.0.1:6379."""
    directory = tmp_path / "shared"
    directory.mkdir()
    server = start_server(directory, "--databases", "4")
    try:
        yield server
    finally:
        server.stop()


def _db(server: RedisServer, db: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, db=db, socket_timeout=5)


def test_takes_an_empty_database_leaves_others_alone_and_empties_it_after(
    shared: RedisServer, tmp_path: Path
) -> None:
    _db(shared, 3).set("someone-else", "1")
    with bench_redis(tmp_path, shared.port) as first:
        assert isinstance(first, BenchRedis)
        assert first.url == f"redis://127.0.0.1:{shared.port}/2"
        assert first.sync == "full"  # this server fsyncs every write
        first.client.set("{relay}:meta", "x")
        first.flush()
        assert set(first.client.keys()) == {LOCK_KEY.encode(), DB_KEY.encode()}
        with bench_redis(tmp_path, shared.port) as second:  # a second run at the same time
            assert isinstance(second, BenchRedis)
            assert second.url.endswith("/1")
    assert _db(shared, 2).dbsize() == _db(shared, 1).dbsize() == 0
    assert _db(shared, 3).get("someone-else") == b"1"
    assert _db(shared, 0).dbsize() == 0  # database 0 is never taken


def test_reuses_a_database_an_interrupted_run_left(shared: RedisServer, tmp_path: Path) -> None:
    left = _db(shared, 3)
    left.set(DB_KEY, "python -m bench replicas")
    left.set("{relay}:jobs", "x")
    with bench_redis(tmp_path, shared.port) as found:
        assert isinstance(found, BenchRedis)
        assert found.url.endswith("/3")
        assert not found.client.exists("{relay}:jobs")


def test_says_why_when_every_database_is_taken(shared: RedisServer, tmp_path: Path) -> None:
    for db in (1, 2, 3):
        _db(shared, db).set("someone-else", "1")
    with bench_redis(tmp_path, shared.port) as found:
        # Falls back to a server of its own.
        assert isinstance(found, BenchRedis)
        assert "started on" in found.where
        assert found.url.endswith("/0")
