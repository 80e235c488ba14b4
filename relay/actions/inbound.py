"""What the press endpoints share: the body, bounded in size and time."""

from __future__ import annotations

import asyncio
import logging
import math

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from relay.admin import FailedAuthLimiter, client_address
from relay.config import RelayConfig
from relay.receiver import error

__all__ = ["MAX_BODY_BYTES", "read_body", "refuse"]

MAX_BODY_BYTES = 64 * 1024
"""A press is a few KiB; a larger body is refused before it is all read."""


async def read_body(request: web.Request, deadline: float) -> bytes | web.Response:
    """The body within ``deadline`` and ``MAX_BODY_BYTES``, or the answer refusing it (408,
    413, 400). A body the app's middleware read already is taken as it is."""
    too_large = error(413, f"body larger than {MAX_BODY_BYTES} bytes")
    body: bytes | None
    try:
        async with asyncio.timeout(deadline):
            if request.content.is_eof():  # read already, or all arrived: nothing to wait for
                body = await request.read()
            else:
                body = await _read_limited(request, MAX_BODY_BYTES)
    except TimeoutError:
        answer = error(408, f"body not received within {deadline:g}s")
        answer.force_close()
        return answer
    except web.HTTPRequestEntityTooLarge:
        return too_large
    except (RequestPayloadError, HttpProcessingError, ConnectionError, ValueError):
        return error(400, "cannot read the body")
    return too_large if body is None or len(body) > MAX_BODY_BYTES else body


async def _read_limited(request: web.Request, limit: int) -> bytes | None:
    """None as soon as the body is longer than ``limit`` (the rest is never buffered)."""
    body = bytearray()
    while len(body) <= limit:
        chunk = await request.content.read(limit + 1 - len(body))
        if not chunk:
            break
        body += chunk
    return None if len(body) > limit else bytes(body)


def refuse(
    request: web.Request,
    config: RelayConfig,
    limiter: FailedAuthLimiter,
    *,
    log: logging.Logger,
    why: str,
    answer: str,
) -> web.Response:
    """A press that failed authentication: counted per client (429 + Retry-After past the
    limit), else a WARNING naming ``why`` and a 401 saying ``answer``. No other side effect."""
    client = client_address(request, config.server.trusted_proxies)
    wait = limiter.failed(client)
    if wait:
        refused = error(429, "too many refused requests; retry later")
        refused.headers["Retry-After"] = str(math.ceil(wait))
        return refused
    log.warning("%s (from %s)", why, client)
    return error(401, answer)
