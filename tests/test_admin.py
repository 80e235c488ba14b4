"""One limit on wrong admin tokens for every admin door; a correct token always gets in."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request

from relay.admin import FAILURES, FailedAuthLimiter, client_address
from relay.app import build_app
from relay.config import load_config
from tests.conftest import BASE_CONFIG

Client = TestClient[Any, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
TOKEN = "adm1n-t0ken-for-tests"
WRONG = {"Authorization": "Bearer wrong-guess"}
RIGHT = {"Authorization": f"Bearer {TOKEN}"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def make_client(
    write_config: Callable[[str], Path], aiohttp_client: Callable[..., Awaitable[Client]]
) -> MakeClient:
    async def make(**server: Any) -> Client:
        text = BASE_CONFIG + f"server: {json.dumps({'admin_token': TOKEN, **server})}\n"
        return await aiohttp_client(build_app(load_config(write_config(text), env={})))

    return make


def request_from(peer: str, *forwarded: str) -> web.Request:
    headers = [("X-Forwarded-For", value) for value in forwarded]
    return make_mocked_request("GET", "/api/counts", headers=headers).clone(remote=peer)


def networks(*cidrs: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(cidr) for cidr in cidrs]


# --- the limiter ---------------------------------------------------------------------------------


def test_wrong_tokens_past_the_limit_must_wait_until_the_oldest_is_a_window_old() -> None:
    clock = Clock()
    limiter = FailedAuthLimiter(failures=3, window=60, clock=clock)
    for _ in range(3):
        assert limiter.failed("1.2.3.4") == 0
        clock.now += 1
    assert limiter.failed("1.2.3.4") == pytest.approx(58)  # the first was 3 s ago
    assert limiter.failed("5.6.7.8") == 0  # another client
    clock.now += 60
    assert limiter.failed("1.2.3.4") == 0  # all aged out


def test_a_client_that_keeps_failing_stays_limited() -> None:
    clock = Clock()
    limiter = FailedAuthLimiter(failures=2, window=10, clock=clock)
    for _ in range(2):
        limiter.failed("c")
    for _ in range(100):
        clock.now += 1
        assert limiter.failed("c") > 0


def test_the_limiter_remembers_a_bounded_number_of_clients() -> None:
    limiter = FailedAuthLimiter(failures=1, window=60, clock=Clock(), max_clients=2)
    for client in ["a", "b", "c"]:
        limiter.failed(client)
    assert limiter.failed("c") > 0 and limiter.failed("b") > 0
    assert limiter.failed("a") == 0  # forgotten: the least recently failing


# --- who the client is ---------------------------------------------------------------------------


def test_x_forwarded_for_is_ignored_without_trusted_proxies() -> None:
    assert client_address(request_from("1.2.3.4", "9.9.9.9"), []) == "1.2.3.4"
    assert client_address(request_from("1.2.3.4", "9.9.9.9"), networks("10.0.0.0/8")) == "1.2.3.4"


@pytest.mark.parametrize(
    ("forwarded", "client"),
    [
        (["203.0.113.7"], "203.0.113.7"),
        (["6.6.6.6, 203.0.113.7"], "203.0.113.7"),  # the left entries are the client's to write
        (["6.6.6.6", "203.0.113.7, 10.0.0.5"], "203.0.113.7"),  # several headers, proxy chain
        (["203.0.113.7:51234"], "203.0.113.7"),
        (["[2001:db8::7]:443"], "2001:db8::7"),
        (["10.0.0.9, 10.0.0.5"], "10.0.0.9"),  # all proxies: the farthest
        (["203.0.113.7, unknown"], "10.0.0.2"),  # garbage from a proxy: the proxy
        ([], "10.0.0.2"),
    ],
)
def test_behind_trusted_proxies_the_client_is_the_rightmost_untrusted_entry(
    forwarded: list[str], client: str
) -> None:
    request = request_from("10.0.0.2", *forwarded)
    assert client_address(request, networks("10.0.0.0/8")) == client


def test_an_ipv4_mapped_peer_is_its_ipv4_address() -> None:
    request = request_from("::ffff:10.0.0.2", "203.0.113.7")
    assert client_address(request, networks("10.0.0.0/8")) == "203.0.113.7"


# --- every door, one limit -----------------------------------------------------------------------


async def test_200_wrong_bearer_guesses_are_limited_and_the_right_token_still_works(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    statuses = []
    for _ in range(200):
        answer = await client.get("/api/counts", headers=WRONG)
        statuses.append(answer.status)
        if answer.status == 429:
            assert 0 < int(answer.headers["Retry-After"]) <= 60
            assert "too many wrong admin tokens" in (await answer.json())["error"]
    assert statuses == [401] * FAILURES + [429] * (200 - FAILURES)

    # Locked out for wrong tokens at every door...
    assert (await client.post("/-/reload", headers=WRONG)).status == 429
    login = await client.post("/ui/login", data={"token": "nope"}, allow_redirects=False)
    assert login.status == 429 and login.headers["Retry-After"]
    # ... but never for the right one.
    assert (await client.get("/api/counts", headers=RIGHT)).status == 200
    assert (await client.post("/-/reload", headers=RIGHT)).status == 200
    login = await client.post("/ui/login", data={"token": TOKEN}, allow_redirects=False)
    assert login.status == 303 and "relay_session" in login.headers["Set-Cookie"]


@pytest.mark.parametrize("door", ["reload", "login"])
async def test_wrong_tokens_at_any_door_count_for_all(make_client: MakeClient, door: str) -> None:
    client = await make_client()
    for _ in range(FAILURES):
        if door == "reload":
            assert (await client.post("/-/reload", headers=WRONG)).status == 401
        else:
            assert (await client.post("/ui/login", data={"token": "x"})).status == 401
    assert (await client.get("/api/counts", headers=WRONG)).status == 429


async def test_requests_without_a_token_do_not_count(make_client: MakeClient) -> None:
    client = await make_client()
    stale_cookie = {"Cookie": "relay_session=old"}
    other_scheme = {"Authorization": "Basic eDp5"}
    for _ in range(3 * FAILURES):
        assert (await client.get("/api/counts")).status == 401
        assert (await client.get("/api/counts", headers=stale_cookie)).status == 401
        assert (await client.post("/-/reload", headers=other_scheme)).status == 401
    assert (await client.get("/api/counts", headers=WRONG)).status == 401


async def test_x_forwarded_for_does_not_split_clients_unless_the_peer_is_trusted(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    for n in range(FAILURES):
        headers = {**WRONG, "X-Forwarded-For": f"198.51.100.{n}"}
        assert (await client.get("/api/counts", headers=headers)).status == 401
    headers = {**WRONG, "X-Forwarded-For": "198.51.100.99"}
    assert (await client.get("/api/counts", headers=headers)).status == 429


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(
    make_client: MakeClient,
) -> None:
    client = await make_client(trusted_proxies=["127.0.0.1", "::1"])
    for _ in range(FAILURES):
        headers = {**WRONG, "X-Forwarded-For": "198.51.100.1"}
        assert (await client.get("/api/counts", headers=headers)).status == 401
    # The same client, whatever it writes to the left of what the proxy appended:
    headers = {**WRONG, "X-Forwarded-For": "203.0.113.50, 198.51.100.1"}
    assert (await client.get("/api/counts", headers=headers)).status == 429
    # Another client behind the same proxy is not held up:
    headers = {**WRONG, "X-Forwarded-For": "198.51.100.2"}
    assert (await client.get("/api/counts", headers=headers)).status == 401
    login = await client.post(
        "/ui/login", data={"token": "x"}, headers={"X-Forwarded-For": "198.51.100.2"}
    )
    assert login.status == 401
