"""Login, sessions, CSRF and the admin token, for the pages and the API."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from aiohttp import web

from relay.app import RELAY
from relay.store import SQLiteStore
from relay.ui.auth import Sessions
from relay.ui.state import UI
from tests.ui.conftest import (
    ADMIN_TOKEN,
    Client,
    Hook,
    bearer,
    login,
    ui_config,
)

API_GETS = [
    "/api/counts",
    "/api/events",
    "/api/events/x",
    "/api/events/x/deliveries",
    "/api/dead-letters",
    "/api/samples",
    "/api/samples/test",
    "/api/config",
]
API_POSTS = ["/api/dead-letters/replay", "/api/dead-letters/1/replay", "/api/route-test"]
PAGES = ["/ui", "/ui/events", "/ui/events/x", "/ui/dead-letters", "/ui/route-test", "/ui/config"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- units ---------------------------------------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "sessions.db", sync="normal")
    await opened.open()
    yield opened
    await opened.close()


async def test_a_session_expires(store: SQLiteStore) -> None:
    clock = Clock()
    sessions = Sessions(store, ttl=60, clock=clock)
    session_id, session = await sessions.open(b"token")
    assert await sessions.get(session_id, b"token") == session
    clock.now += 61
    assert await sessions.get(session_id, b"token") is None


async def test_a_session_ends_when_the_admin_token_changes(store: SQLiteStore) -> None:
    sessions = Sessions(store)
    session_id, _ = await sessions.open(b"old")
    assert await sessions.get(session_id, b"new") is None
    assert await sessions.get(session_id, b"old") is None  # gone for good


async def test_unknown_and_closed_sessions_are_refused(store: SQLiteStore) -> None:
    sessions = Sessions(store)
    session_id, _ = await sessions.open(b"t")
    assert await sessions.get("made-up", b"t") is None
    assert await sessions.get(None, b"t") is None
    assert await sessions.get("", b"t") is None
    await sessions.close(session_id)
    assert await sessions.get(session_id, b"t") is None


async def test_sessions_are_bounded_and_random(store: SQLiteStore) -> None:
    sessions = Sessions(store, limit=3)
    opened = [await sessions.open(b"t") for _ in range(5)]
    assert [await sessions.get(session_id, b"t") is not None for session_id, _ in opened] == [
        False, False, True, True, True,
    ]  # fmt: skip
    ids = {session_id for session_id, _ in opened}
    csrfs = {session.csrf for _, session in opened}
    assert len(ids) == len(csrfs) == 5
    assert all(len(value) >= 40 for value in ids | csrfs)


async def test_what_the_store_holds_is_not_a_valid_session(store: SQLiteStore) -> None:
    sessions = Sessions(store)
    await store.put_session("k", "not json", expires_at=2e9)
    await store.put_session(hashlib.sha256(b"x").hexdigest(), "{}", expires_at=2e9)
    assert await sessions.get("k", b"t") is None
    assert await sessions.get("x", b"t") is None


# --- without an admin token ----------------------------------------------------------------------


async def test_without_admin_token_ui_and_api_do_not_exist(
    make_app: Callable[..., web.Application], aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    client = await aiohttp_client(make_app(admin=None))
    for path in [*PAGES, "/ui/login", "/ui/static/app.css", "/ui/static/app.js", *API_GETS]:
        answer = await client.get(path, headers=bearer(), allow_redirects=False)
        assert answer.status == 404, path
        assert "error" in await answer.json()
    for path in ["/ui/login", "/ui/logout", *API_POSTS]:
        answer = await client.post(path, data={"token": ""}, headers=bearer(""))
        assert answer.status == 404, path


async def test_an_empty_admin_token_is_off(
    write_config: Callable[[str], Path],
    hook: Hook,
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    from relay.app import build_app
    from relay.config import load_config

    path = write_config(ui_config(hook.url, admin=""))
    client = await aiohttp_client(build_app(load_config(path, env={})))
    assert (await client.post("/ui/login", data={"token": ""})).status == 404
    assert (await client.get("/api/counts", headers={"Authorization": "Bearer "})).status == 404


# --- login and logout ----------------------------------------------------------------------------


async def test_pages_redirect_to_login_keeping_where_you_were(client: Client) -> None:
    for path in PAGES:
        answer = await client.get(path + "?flag=TEST", allow_redirects=False)
        assert answer.status == 303, path
        assert answer.headers["Location"].startswith("/ui/login?next=")
    form = await client.get("/ui/login?next=/ui/dead-letters")
    text = await form.text()
    assert form.status == 200 and 'name="token"' in text and 'value="/ui/dead-letters"' in text
    assert ADMIN_TOKEN not in text


async def test_login_sets_a_strict_http_only_session_cookie(client: Client) -> None:
    answer = await client.post(
        "/ui/login",
        data={"token": ADMIN_TOKEN, "next": "/ui/config"},
        allow_redirects=False,
    )
    assert answer.status == 303
    assert answer.headers["Location"] == "/ui/config"
    cookie = SimpleCookie(answer.headers["Set-Cookie"])["relay_session"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/"
    assert not cookie["secure"]
    assert ADMIN_TOKEN not in answer.headers["Set-Cookie"]
    assert (await client.get("/ui/config")).status == 200


async def test_the_cookie_is_secure_behind_https(client: Client) -> None:
    answer = await client.post(
        "/ui/login",
        data={"token": ADMIN_TOKEN},
        headers={"X-Forwarded-Proto": "https"},
        allow_redirects=False,
    )
    assert SimpleCookie(answer.headers["Set-Cookie"])["relay_session"]["secure"] is True


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/ui/", "/ui/\\evil", "/other", "", "/ui/\r\nX: y"],
)
async def test_login_redirects_only_inside_the_ui(client: Client, target: str) -> None:
    answer = await client.post(
        "/ui/login", data={"token": ADMIN_TOKEN, "next": target}, allow_redirects=False
    )
    assert answer.headers["Location"] == "/ui/events"


@pytest.mark.parametrize("token", ["n0t-it", "", ADMIN_TOKEN + "x", "ünïcode", ADMIN_TOKEN[:-1]])
async def test_a_wrong_token_is_refused(
    client: Client, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    answer = await client.post("/ui/login", data={"token": token}, allow_redirects=False)
    assert answer.status == 401
    assert "UI login refused" in caplog.text
    assert ADMIN_TOKEN[:-1] not in caplog.text and (not token or token not in caplog.text)
    assert "Set-Cookie" not in answer.headers
    assert "Wrong admin token" in await answer.text()
    assert (await client.get("/ui/events", allow_redirects=False)).status == 303


async def test_repeated_wrong_tokens_are_throttled_but_the_right_one_gets_in(
    client: Client,
) -> None:
    limiter = client.app[RELAY].auth_failures
    limiter.failures, limiter.window = 2, 60
    for _ in range(2):
        assert (await client.post("/ui/login", data={"token": "nope"})).status == 401
    blocked = await client.post("/ui/login", data={"token": "nope"}, allow_redirects=False)
    assert blocked.status == 429 and 0 < int(blocked.headers["Retry-After"]) <= 60
    assert "Too many wrong tokens" in await blocked.text()
    assert "Set-Cookie" not in blocked.headers
    answer = await client.post("/ui/login", data={"token": ADMIN_TOKEN}, allow_redirects=False)
    assert answer.status == 303 and "Set-Cookie" in answer.headers


async def test_logout_needs_the_csrf_token_and_ends_the_session(client: Client) -> None:
    csrf = await login(client)
    refused = await client.post("/ui/logout", data={"csrf_token": "wrong"})
    assert refused.status == 403
    assert (await client.get("/ui/events", allow_redirects=False)).status == 200
    answer = await client.post("/ui/logout", data={"csrf_token": csrf}, allow_redirects=False)
    assert answer.status == 303 and answer.headers["Location"] == "/ui/login"
    assert (await client.get("/ui/events", allow_redirects=False)).status == 303
    assert (await client.get("/api/counts")).status == 401


async def test_an_old_session_cookie_does_not_work_after_logout(client: Client) -> None:
    csrf = await login(client)
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))["relay_session"].value
    await client.post("/ui/logout", data={"csrf_token": csrf})
    answer = await client.get(
        "/api/counts", headers={"Cookie": f"relay_session={cookie}"}, allow_redirects=False
    )
    assert answer.status == 401


async def test_changing_the_admin_token_ends_sessions(
    client: Client, write_config: Callable[[str], Path], hook: Hook
) -> None:
    await login(client)
    write_config(ui_config(hook.url, admin="a-new-admin-token"))
    assert (await client.app[RELAY].reloader.reload("test")).get("ok")
    assert (await client.get("/ui/events", allow_redirects=False)).status == 303
    assert (await client.get("/api/counts")).status == 401
    assert (await client.get("/api/counts", headers=bearer("a-new-admin-token"))).status == 200


# --- the API's two ways in -----------------------------------------------------------------------


async def test_the_api_needs_a_token_or_a_session(client: Client) -> None:
    for path in API_GETS:
        answer = await client.get(path)
        assert answer.status == 401, path
        assert "error" in await answer.json()
    for path in API_POSTS:
        assert (await client.post(path, data=b"{}")).status == 401, path


@pytest.mark.parametrize("header", ["Bearer wrong", "Bearer ", "bearer x", "Bearer ünï"])
async def test_a_wrong_bearer_is_401_even_with_a_session(client: Client, header: str) -> None:
    await login(client)
    answer = await client.get("/api/counts", headers={"Authorization": header})
    assert answer.status == 401


@pytest.mark.parametrize("header", ["Basic " + ADMIN_TOKEN, ADMIN_TOKEN, "Basic dXNlcjpwdw=="])
async def test_other_authorization_schemes_are_not_the_admin_token(
    client: Client, header: str
) -> None:
    """A proxy's basic auth may ride along: the session decides, the header does not count."""
    assert (await client.get("/api/counts", headers={"Authorization": header})).status == 401
    await login(client)
    assert (await client.get("/api/counts", headers={"Authorization": header})).status == 200


async def test_bearer_calls_need_no_csrf(client: Client) -> None:
    assert (await client.get("/api/counts", headers=bearer())).status == 200
    answer = await client.post("/api/dead-letters/replay", headers=bearer())
    assert answer.status == 200
    assert await answer.json() == {"replayed": 0}


async def test_session_gets_need_no_csrf(client: Client) -> None:
    await login(client)
    for path in ["/api/counts", "/api/events", "/api/dead-letters", "/api/config"]:
        assert (await client.get(path)).status == 200, path


@pytest.mark.parametrize("path", API_POSTS)
async def test_every_session_post_checks_the_csrf_token(client: Client, path: str) -> None:
    csrf = await login(client)
    for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": ""}, {"X-CSRF-Token": "é"}):
        answer = await client.post(path, data=b"{}", headers=headers)
        assert answer.status == 403, headers
        assert "CSRF" in (await answer.json())["error"]
    answer = await client.post(path, data=b"{}", headers={"X-CSRF-Token": csrf})
    assert answer.status not in (401, 403)


async def test_a_form_post_may_carry_the_csrf_token_as_a_field(client: Client) -> None:
    csrf = await login(client)
    answer = await client.post("/api/dead-letters/replay", data={"csrf_token": csrf})
    assert answer.status == 200
    answer = await client.post("/api/dead-letters/replay", data={"csrf_token": "no"})
    assert answer.status == 403


async def test_another_sessions_csrf_token_is_refused(client: Client) -> None:
    csrf = await login(client)
    other = (await client.app[UI].sessions.open(ADMIN_TOKEN.encode()))[1].csrf
    assert other != csrf
    answer = await client.post("/api/dead-letters/replay", headers={"X-CSRF-Token": other})
    assert answer.status == 403


async def test_api_answers_are_not_cached(client: Client) -> None:
    answer = await client.get("/api/counts", headers=bearer())
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
