"""Who may see the UI and call the API: the admin token, once per login, then a session cookie.

A login (the admin token typed into a form) creates a random session id, kept in the store (as
its SHA-256) with an expiry and a CSRF token, so every worker and replica knows it; the browser
gets the id as an HttpOnly, SameSite=Strict cookie. The API accepts ``Authorization: Bearer
<admin_token>`` or that cookie, and every cookie-authenticated POST must carry the session's CSRF
token (``X-CSRF-Token`` header or ``csrf_token`` form field). A session also ends when the admin
token changes. Without an admin token the UI does not exist.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from relay.admin import (
    FailedAuthLimiter,
    admin_token,
    bearer_offered,
    bearer_ok,
    refusal,
    wrong_token,
)
from relay.runtime import Runtime
from relay.store.base import Store

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "Session",
    "Sessions",
    "api_session",
    "csrf_ok",
    "current_token",
    "token_matches",
]

SESSION_COOKIE = "relay_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SESSION_TTL = 12 * 3600.0
MAX_SESSIONS = 1000
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


@dataclass(frozen=True, slots=True)
class Session:
    csrf: str
    expires: float
    token_digest: bytes
    """SHA-256 of the admin token it was opened with."""

    def dumps(self) -> str:
        return json.dumps(
            {"csrf": self.csrf, "expires": self.expires, "token": self.token_digest.hex()}
        )

    @classmethod
    def loads(cls, text: str) -> Session | None:
        """None for anything this module did not write."""
        try:
            data = json.loads(text)
            return cls(str(data["csrf"]), float(data["expires"]), bytes.fromhex(data["token"]))
        except (ValueError, TypeError, KeyError):
            return None


class Sessions:
    """Logged-in browsers, kept in the store so that every worker and replica sharing it knows
    them (and a restart logs nobody out). The store holds the SHA-256 of each session id, never
    the id. No cache: a logout or a token change is seen at once by every process.

    ``limit`` bounds the sessions this process opened and that are still open (the oldest is
    closed first); every session also ends after ``ttl``."""

    def __init__(
        self,
        store: Store,
        *,
        ttl: float = SESSION_TTL,
        limit: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._ttl = ttl
        self._limit = limit
        self._clock = clock
        self._opened: dict[str, None] = {}
        """Keys of the sessions opened here and not closed, oldest first."""

    async def open(self, token: bytes) -> tuple[str, Session]:
        """A new session for a correct ``token``: its id (the cookie value) and the session."""
        now = self._clock()
        while len(self._opened) >= self._limit:
            await self._forget(next(iter(self._opened)))
        session_id = secrets.token_urlsafe(32)
        session = Session(secrets.token_urlsafe(32), now + self._ttl, _digest(token))
        key = _key(session_id)
        await self._store.put_session(key, session.dumps(), expires_at=session.expires)
        self._opened[key] = None
        return session_id, session

    async def get(self, session_id: str | None, token: bytes) -> Session | None:
        """The live session for this id, opened with the current ``token`` (one opened with
        another token is closed)."""
        if not session_id:
            return None
        key = _key(session_id)
        text = await self._store.get_session(key, now=self._clock())
        session = None if text is None else Session.loads(text)
        if session is None:
            return None
        if not hmac.compare_digest(session.token_digest, _digest(token)):
            await self._forget(key)
            return None
        return session

    async def close(self, session_id: str | None) -> None:
        if session_id:
            await self._forget(_key(session_id))

    async def _forget(self, key: str) -> None:
        await self._store.delete_session(key)
        self._opened.pop(key, None)


def _key(session_id: str) -> str:
    """What the store keeps of a session id."""
    return hashlib.sha256(session_id.encode("utf-8", "surrogateescape")).hexdigest()


def current_token(runtime: Runtime) -> bytes:
    """The admin token; 404 when none (or an empty one) is configured: no UI, no API."""
    token = admin_token(runtime)
    if not token:
        raise web.HTTPNotFound()
    return token


def token_matches(given: str, token: bytes) -> bool:
    given_bytes = given.strip().encode("utf-8", "surrogateescape")
    return bool(given_bytes) and hmac.compare_digest(given_bytes, token)


def csrf_ok(given: str | None, session: Session) -> bool:
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), session.csrf.encode())


async def api_session(
    request: web.Request, runtime: Runtime, sessions: Sessions, limiter: FailedAuthLimiter
) -> Session | None:
    """Authenticate an API call: None for a valid bearer token, the session for a valid cookie
    (its CSRF token checked on POST); else 404 (admin off), 401, 403, or 429 for a client that
    sent too many wrong bearer tokens."""
    token = current_token(runtime)
    if bearer_offered(request):  # other schemes may belong to a proxy in front: ignored
        if bearer_ok(request, token):
            return None
        raise refusal(wrong_token(request, runtime, limiter, "API"), "admin token required")
    session = await sessions.get(request.cookies.get(SESSION_COOKIE), token)
    if session is None:
        raise web.HTTPUnauthorized(
            reason="admin token or UI session required", headers={"WWW-Authenticate": "Bearer"}
        )
    if request.method not in SAFE_METHODS:
        given = request.headers.get(CSRF_HEADER)
        if given is None and request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            form = await request.post()
            value = form.get(CSRF_FIELD)
            given = value if isinstance(value, str) else None
        if not csrf_ok(given, session):
            raise web.HTTPForbidden(reason="missing or wrong CSRF token")
    return session
