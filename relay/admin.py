"""Admin authentication: ``Authorization: Bearer <admin_token>``, compared in constant time.

Without ``server.admin_token`` the admin surface does not exist (404), rather than being open.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from relay.runtime import Runtime

__all__ = ["admin_token", "bearer_ok", "require_admin"]


def admin_token(runtime: Runtime) -> bytes | None:
    token = runtime.loaded.config.server.admin_token
    return token.get_secret_value().encode("utf-8") if token is not None else None


def bearer_ok(request: web.Request, token: bytes) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        return False
    return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), token)


def require_admin(request: web.Request, runtime: Runtime) -> None:
    """Raise 404 when admin is off, 401 when the bearer token is missing or wrong."""
    token = admin_token(runtime)
    if token is None:
        raise web.HTTPNotFound()
    if not bearer_ok(request, token):
        raise web.HTTPUnauthorized(
            reason="admin token required", headers={"WWW-Authenticate": "Bearer"}
        )
