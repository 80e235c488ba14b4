"""Admin authentication: ``Authorization: Bearer <admin_token>``, compared in constant time, and
one limiter of wrong tokens for every admin door (UI login form, API bearer, ``/-/reload``).

Without ``server.admin_token`` the admin surface does not exist (404), rather than being open.
A client that sent ``FAILURES`` wrong tokens within ``WINDOW`` seconds has its further wrong
tokens answered 429 + Retry-After instead of 401. A correct token is always accepted: failing on
purpose cannot lock the admins out, even when they share an address with the one failing.
It follows that a client ignoring the 429s can go on guessing as fast as it is answered: the
limit keeps scripts and their logs in check, the token's length is what defeats guessing.
Clients are told apart by peer address, or, when the peer is one of ``server.trusted_proxies``,
by the right-most ``X-Forwarded-For`` entry that is not a trusted proxy.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiohttp import web

from relay.runtime import Runtime

__all__ = [
    "FAILURES",
    "WINDOW",
    "FailedAuthLimiter",
    "admin_token",
    "bearer_offered",
    "bearer_ok",
    "client_address",
    "refusal",
    "require_admin",
    "wrong_token",
]

log = logging.getLogger("relay.admin")

FAILURES = 10
WINDOW = 60.0

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass
class _Failures:
    times: deque[float]
    warned_until: float = 0.0


@dataclass
class FailedAuthLimiter:
    """Wrong admin tokens per client: past ``failures`` within ``window`` seconds, a client must
    wait until the oldest of them is ``window`` old. Remembers ``max_clients`` clients at most
    (the least recently failing are forgotten first)."""

    failures: int = FAILURES
    window: float = WINDOW
    clock: Callable[[], float] = time.monotonic
    max_clients: int = 10_000
    _clients: OrderedDict[str, _Failures] = field(default_factory=OrderedDict)

    def failed(self, client: str) -> float:
        """Count a wrong token from ``client``; seconds it must wait (0: it is under the limit,
        this one is answered 401)."""
        now = self.clock()
        entry = self._clients.pop(client, None) or _Failures(deque(maxlen=self.failures))
        self._clients[client] = entry
        while len(self._clients) > self.max_clients:
            self._clients.popitem(last=False)
        limited = len(entry.times) == self.failures and entry.times[0] > now - self.window
        entry.times.append(now)
        if not limited:
            return 0.0
        if now >= entry.warned_until:
            entry.warned_until = now + self.window
            log.warning(
                "%d failed authentications (wrong admin tokens or press signatures) from %s "
                "within %gs: its failures get 429 until it stops for %gs (a correct one still "
                "works)",
                self.failures, client, self.window, self.window,
            )  # fmt: skip
        return max(entry.times[0] + self.window - now, 1.0)


def admin_token(runtime: Runtime) -> bytes | None:
    """The admin token; None when none (or an empty one) is configured."""
    token = runtime.loaded.config.server.admin_token
    if token is None or not token.get_secret_value():
        return None
    return token.get_secret_value().encode("utf-8")


def bearer_offered(request: web.Request) -> bool:
    """The request names the Bearer scheme (other schemes may belong to a proxy in front)."""
    return request.headers.get("Authorization", "").partition(" ")[0].lower() == "bearer"


def bearer_ok(request: web.Request, token: bytes) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        return False
    return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), token)


def client_address(request: web.Request, trusted: Sequence[IPNetwork]) -> str:
    """Who sent ``request``: its peer, or past trusted proxies, the right-most untrusted
    ``X-Forwarded-For`` entry (the left ones are whatever the client chose to write)."""
    peer = request.remote or "unknown"
    address = _address(peer)
    if not trusted or address is None or not _is_trusted(address, trusted):
        return peer
    hops = [hop for value in request.headers.getall("X-Forwarded-For", []) for hop in
            value.split(",")]  # fmt: skip
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break  # a trusted proxy wrote something that is no address: stop trusting the rest
        if not _is_trusted(address, trusted):
            return str(address)
        peer = str(address)
    return peer


def _address(text: str) -> IPAddress | None:
    """An address from a peer or an X-Forwarded-For entry (``1.2.3.4:80`` and ``[::1]:80`` too)."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _is_trusted(address: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)


def wrong_token(
    request: web.Request, runtime: Runtime, limiter: FailedAuthLimiter, door: str
) -> float:
    """Count a wrong admin token sent to ``door``; seconds its client must wait (0 = 401)."""
    client = client_address(request, runtime.loaded.config.server.trusted_proxies)
    wait = limiter.failed(client)
    if not wait:
        log.warning("%s refused: wrong admin token (from %s)", door, client)
    return wait


def refusal(wait: float, reason: str) -> web.HTTPException:
    """401 for a missing or wrong token, or 429 + Retry-After once ``wait`` says so."""
    if wait:
        return web.HTTPTooManyRequests(
            reason="too many wrong admin tokens; retry later",
            headers={"Retry-After": str(math.ceil(wait))},
        )
    return web.HTTPUnauthorized(reason=reason, headers={"WWW-Authenticate": "Bearer"})


def require_admin(request: web.Request, runtime: Runtime, limiter: FailedAuthLimiter) -> None:
    """Raise 404 when admin is off, 401 when the bearer token is missing or wrong, 429 when
    this client has sent too many wrong ones."""
    token = admin_token(runtime)
    if token is None:
        raise web.HTTPNotFound()
    if bearer_ok(request, token):
        return
    wait = wrong_token(request, runtime, limiter, "reload") if bearer_offered(request) else 0.0
    raise refusal(wait, "admin token required")
