"""A Redis for the tests: ``REDIS_URL`` if set, else a ``redis-server`` the test run starts.

Without either the Redis tests skip, unless ``RELAY_REQUIRE_REDIS=1`` (then they fail). A Redis
named by ``REDIS_URL`` is never flushed: each test gets its own namespace and only that
namespace's keys are deleted afterwards.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NoReturn

import pytest
import redis

__all__ = ["RedisServer", "redis_namespace", "redis_server", "redis_unavailable", "start_server"]

START_TIMEOUT = 10.0


def redis_unavailable(reason: str) -> NoReturn:
    if os.environ.get("RELAY_REQUIRE_REDIS") == "1":
        pytest.fail(f"RELAY_REQUIRE_REDIS=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@dataclass
class RedisServer:
    """A Redis to test against; ``process`` is set when the tests started it themselves."""

    url: str
    sync: Literal["full", "normal"]
    """``full`` when the server fsyncs every write (the store then checks that it does)."""
    directory: Path | None = None
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def kill(self) -> None:
        """SIGKILL: no shutdown save, only what is already in the append-only file survives."""
        assert self.process is not None, "only a server the tests started can be killed"
        self.process.kill()
        self.process.wait()

    def restart(self) -> None:
        """Start again on the same port and directory (it reloads the append-only file)."""
        assert self.directory is not None
        self.process = _spawn(self.directory, self.port)
        _wait_ready(self)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(directory: Path, *args: str) -> RedisServer:
    """A new ``redis-server`` on a free port, fsyncing every write to an append-only file in
    ``directory``; extra ``args`` override settings."""
    if shutil.which("redis-server") is None:
        redis_unavailable("REDIS_URL is not set and redis-server is not installed")
    last: Exception | None = None
    for _ in range(3):
        port = _free_port()
        server = RedisServer(
            f"redis://127.0.0.1:{port}/0", "full", directory, port, _spawn(directory, port, *args)
        )
        try:
            _wait_ready(server)
        except RuntimeError as exc:  # e.g. the port was taken meanwhile
            server.stop()
            last = exc
            continue
        return server
    raise RuntimeError(f"cannot start redis-server: {last}")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield _external(url)
        return
    server = start_server(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_namespace(redis_server: RedisServer) -> Iterator[str]:
    """A namespace of its own for one test; its keys are deleted afterwards."""
    namespace = f"relay-test-{secrets.token_hex(6)}"
    yield namespace
    with redis_server.client() as client:
        keys = list(client.scan_iter(match=f"{{{namespace}}}:*", count=1000))
        if keys:
            client.delete(*keys)


def _external(url: str) -> RedisServer:
    try:
        with redis.Redis.from_url(url, socket_timeout=5, decode_responses=True) as client:
            client.ping()
            try:
                config = {**client.config_get("append*"), **client.config_get("maxmemory-*")}
            except redis.ResponseError:
                config = {}
    except redis.RedisError as exc:
        redis_unavailable(f"the Redis at REDIS_URL does not answer ({type(exc).__name__})")
    durable = (
        config.get("appendonly") == "yes"
        and config.get("appendfsync") == "always"
        and config.get("maxmemory-policy") == "noeviction"
    )
    return RedisServer(url, "full" if durable else "normal")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _spawn(directory: Path, port: int, *args: str) -> subprocess.Popen[bytes]:
    command = [
        "redis-server",
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "yes",
        "--appendfsync", "always",
        "--dir", str(directory),
        "--logfile", str(directory / "redis.log"),
        *args,
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_ready(server: RedisServer) -> None:
    assert server.process is not None
    deadline = time.monotonic() + START_TIMEOUT
    with redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=1) as client:
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {server.process.returncode}")
            try:
                if client.ping():
                    return
            except redis.ConnectionError:  # also BusyLoadingError while it reads the AOF
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server not ready within {START_TIMEOUT}s")
            time.sleep(0.01)
