"""A Redis for the replicas benchmark: the one at 127.0.0.1:6379 if it answers, in a database no
one else uses (emptied before each run and at the end), else a ``redis-server`` started here on a
free port (fsync on every write, the durable setting), else none, with the reason.

A database of the shared server is taken only if it is empty, or holds ``DB_KEY`` (left by an
earlier run of this benchmark), and only while ``LOCK_KEY`` (``SET NX`` with an expiry) says no
other run of it is using that database.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import redis

from bench.common import closed_port

__all__ = ["SHARED_PORT", "BenchRedis", "bench_redis", "durable"]

SHARED_PORT = 6379
LOCK_KEY = "relay-bench:lock"
DB_KEY = "relay-bench:db"
LOCK_SECONDS = 900
START_TIMEOUT = 10.0


@dataclass
class BenchRedis:
    url: str
    sync: Literal["full", "normal"]
    """The relays' ``store.sync``: ``full`` only on a Redis that fsyncs every write."""
    where: str
    client: redis.Redis = field(repr=False)
    token: str = field(default_factory=lambda: secrets.token_hex(8), repr=False)

    def flush(self) -> None:
        """Empty the database (a fresh store), keeping it marked as this run's."""
        self.client.flushdb()
        self._mark()

    def _mark(self) -> None:
        self.client.set(LOCK_KEY, self.token, ex=LOCK_SECONDS)
        self.client.set(DB_KEY, "python -m bench replicas")


def durable(client: redis.Redis) -> bool:
    """The settings the relay's ``sync: full`` asks of Redis (see relay.store.redis)."""
    try:
        config = {**client.config_get("append*"), **client.config_get("maxmemory-policy")}
    except redis.ResponseError:
        return False
    return (
        config.get("appendonly") == "yes"
        and config.get("appendfsync") == "always"
        and config.get("maxmemory-policy") == "noeviction"
    )


@contextlib.contextmanager
def bench_redis(work: Path, port: int = SHARED_PORT) -> Iterator[BenchRedis | str]:
    """A Redis to run on, emptied; or why there is none. Emptied again on the way out."""
    found = _shared(port)
    if isinstance(found, BenchRedis):
        try:
            yield found
        finally:
            with contextlib.suppress(redis.RedisError):
                found.client.flushdb()
            found.client.close()
        return
    if shutil.which("redis-server") is None:
        yield f"{found}, and redis-server is not installed"
        return
    with _own_server(work) as own:
        yield own


def _shared(port: int) -> BenchRedis | str:
    """A free database of the Redis on ``port``, or why not."""
    probe = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, decode_responses=True)
    try:
        probe.ping()
        try:
            databases = int(probe.config_get("databases").get("databases") or 16)
        except redis.ResponseError:
            databases = 16
        sync: Literal["full", "normal"] = "full" if durable(probe) else "normal"
    except (redis.RedisError, OSError):
        probe.close()
        return f"no Redis answers at 127.0.0.1:{port}"
    probe.close()
    for db in range(databases - 1, 0, -1):
        client = redis.Redis(host="127.0.0.1", port=port, db=db, socket_timeout=5)
        token = secrets.token_hex(8)
        if (client.dbsize() == 0 or client.exists(DB_KEY)) and client.set(
            LOCK_KEY, token, nx=True, ex=LOCK_SECONDS
        ):
            if client.dbsize() == 1 or client.exists(DB_KEY):
                where = f"the Redis at 127.0.0.1:{port}, database {db}"
                found = BenchRedis(f"redis://127.0.0.1:{port}/{db}", sync, where, client, token)
                found.flush()
                return found
            client.delete(LOCK_KEY)  # someone else wrote to it meanwhile
        client.close()
    return f"the Redis at 127.0.0.1:{port} has no free database"


@contextlib.contextmanager
def _own_server(work: Path) -> Iterator[BenchRedis | str]:
    directory = work / "redis"
    directory.mkdir(exist_ok=True)
    port = closed_port()
    argv = [
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "yes", "--appendfsync", "always", "--dir", str(directory),
        "--logfile", str(directory / "redis.log"),
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    try:
        version = _wait_ready(proc, client)
        if version is None:
            yield f"redis-server did not start on port {port}"
            return
        where = f"redis-server {version} started on 127.0.0.1:{port} (appendfsync always)"
        yield BenchRedis(f"redis://127.0.0.1:{port}/0", "full", where, client)
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_ready(proc: subprocess.Popen[bytes], client: redis.Redis) -> str | None:
    """The server's version once it answers; None if it exits or stays silent."""
    deadline = time.monotonic() + START_TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            version: str = client.info("server")["redis_version"]
            return version
        except (redis.ConnectionError, redis.BusyLoadingError):
            time.sleep(0.02)
    return None
