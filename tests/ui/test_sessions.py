"""Dashboard logins are kept in the store: two apps on one store (two workers on one SQLite file,
or two replicas on one Redis) honour each other's logins, logouts and expiries."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from relay.store import RedisStore, Store
from relay.ui.auth import SESSION_TTL, Sessions
from relay.ui.state import UI
from tests.redis_server import RedisServer, redis_namespace, redis_server  # noqa: F401
from tests.ui.conftest import ADMIN_TOKEN, Client, login

AppPair = tuple[Client, Client]


class Clock:
    """Starts at the real time: Redis drops a session at its end by its own clock."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest) -> Callable[[], Store | None]:
    """Makes the store of one more app: None = the config's SQLite file (the same for each)."""
    if request.param == "sqlite":
        return lambda: None
    server: RedisServer = request.getfixturevalue("redis_server")
    namespace: str = request.getfixturevalue("redis_namespace")
    return lambda: RedisStore(server.url, namespace=namespace, sync=server.sync)


@pytest.fixture
async def apps(
    make_app: Callable[..., web.Application],
    aiohttp_client: Callable[..., Awaitable[Client]],
    backend: Callable[[], Store | None],
) -> AppPair:
    """Two apps (two processes' worth of relay) on one store, each with its own ``Sessions``."""
    clients = []
    for _ in range(2):
        store = backend()
        app = make_app() if store is None else make_app(store=store)
        clients.append(await aiohttp_client(app))
    return clients[0], clients[1]


def cookie_of(client: Client) -> str:
    value: str = client.session.cookie_jar.filter_cookies(client.make_url("/"))[
        "relay_session"
    ].value
    return value


def with_cookie(session_id: str, **headers: str) -> dict[str, str]:
    return {"Cookie": f"relay_session={session_id}", **headers}


async def status(client: Client, path: str, session_id: str) -> int:
    answer = await client.get(path, headers=with_cookie(session_id), allow_redirects=False)
    return answer.status


async def test_a_login_on_one_app_is_valid_on_the_other(apps: AppPair) -> None:
    first, second = apps
    csrf = await login(first)
    session_id = cookie_of(first)

    assert await status(second, "/ui/events", session_id) == 200
    assert await status(second, "/api/counts", session_id) == 200
    replay = await second.post(
        "/api/dead-letters/replay", headers=with_cookie(session_id, **{"X-CSRF-Token": csrf})
    )
    assert replay.status == 200
    login_form = await second.get(
        "/ui/login", headers=with_cookie(session_id), allow_redirects=False
    )
    assert login_form.status == 303  # already logged in there too


async def test_a_logout_on_one_app_logs_out_on_the_other(apps: AppPair) -> None:
    first, second = apps
    csrf = await login(first)
    session_id = cookie_of(first)
    assert await status(second, "/api/counts", session_id) == 200

    answer = await second.post(
        "/ui/logout",
        data={"csrf_token": csrf},
        headers=with_cookie(session_id),
        allow_redirects=False,
    )

    assert answer.status == 303
    for client in (first, second):
        assert await status(client, "/ui/events", session_id) == 303
        assert await status(client, "/api/counts", session_id) == 401


async def test_a_session_ends_after_its_ttl_on_every_app(apps: AppPair) -> None:
    clock = Clock()
    for client in apps:
        state = client.app[UI]
        state.sessions = Sessions(state.store, clock=clock)
    first, second = apps
    await login(first)
    session_id = cookie_of(first)

    clock.now += SESSION_TTL - 1
    assert await status(second, "/api/counts", session_id) == 200
    clock.now += 2
    for client in apps:
        assert await status(client, "/api/counts", session_id) == 401
        assert await status(client, "/ui/events", session_id) == 303


async def test_a_session_survives_a_restart(
    make_app: Callable[..., web.Application],
    aiohttp_client: Callable[..., Awaitable[Client]],
    backend: Callable[[], Store | None],
) -> None:
    def app() -> web.Application:
        store = backend()
        return make_app() if store is None else make_app(store=store)

    first = await aiohttp_client(app())
    await login(first)
    session_id = cookie_of(first)
    await first.close()

    again = await aiohttp_client(app())
    assert await status(again, "/api/counts", session_id) == 200


async def test_the_store_holds_the_session_ids_hash_never_the_id(
    apps: AppPair, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    first, _ = apps
    await login(first)
    session_id = cookie_of(first)
    key = hashlib.sha256(session_id.encode()).hexdigest()

    dumps = stored_bytes(apps[0].app[UI].store, tmp_path, request)

    assert key.encode() in dumps
    assert session_id.encode() not in dumps
    assert ADMIN_TOKEN.encode() not in dumps


def stored_bytes(store: Store, tmp_path: Path, request: pytest.FixtureRequest) -> bytes:
    """Everything the store holds, as bytes: the SQLite files (with the WAL), or every key and
    value of the Redis namespace."""
    if not isinstance(store, RedisStore):
        database = tmp_path / "relay.db"
        with sqlite3.connect(database) as conn:  # the rows themselves, and the files
            rows = conn.execute("SELECT key, data FROM sessions").fetchall()
        files = [path.read_bytes() for path in tmp_path.glob("relay.db*")]
        return repr(rows).encode() + b"".join(files)
    server: RedisServer = request.getfixturevalue("redis_server")
    found: list[bytes] = []
    with server.client() as client:
        for name in client.scan_iter(match=f"{store.prefix}*", count=1000):
            found.append(name)
            kind = client.type(name)
            value: Any
            if kind == b"string":
                value = client.get(name)
            elif kind == b"hash":
                value = client.hgetall(name)
            else:
                value = client.dump(name)
            found.append(repr(value).encode())
    return b"\n".join(found)
