"""Request bodies outside the webhook: read whole before the handler runs, within the deadline,
and only so many slow ones at once.

aiohttp sets no deadline on a body: a client announcing ``Content-Length: 500`` and sending a
byte a second would hold its request (and the handler waiting on it) for as long as it likes,
before any authentication. The webhook reads its own body under ``server.read_timeout``
(receiver.py); ``BodyReads.middleware`` gives every other route the same deadline (408 and the
connection closed) and refuses a body (503) while ``limit`` others are still arriving.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from relay.receiver import error

__all__ = ["BODY_READS", "MAX_SLOW_READS", "BodyReads"]

MAX_SLOW_READS = 32
"""Bodies still arriving at once on the routes this guards (admin UI and API: low traffic)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BodyReads:
    """The middleware and its count of bodies being read."""

    def __init__(
        self,
        read_timeout: Callable[[], float],
        *,
        skip: Callable[[web.Request], bool] = lambda _: False,
        limit: int = MAX_SLOW_READS,
    ) -> None:
        self._read_timeout = read_timeout
        self._skip = skip
        self.limit = limit
        self.active = 0
        """Bodies being read now (those not already complete when the request came in)."""

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # A path or method with no route is answered at once: the body is left unread (aiohttp
        # drains it for ``lingering_time`` at most, which build_app sets to the same deadline).
        routed = request.match_info.http_exception is None
        if request.body_exists and routed and not self._skip(request):
            refused = await self._read(request)
            if refused is not None:
                refused.force_close()
                return refused
        return await handler(request)

    async def _read(self, request: web.Request) -> web.Response | None:
        """Read and keep the body (``request.read()`` / ``post()`` then return it at once);
        or the answer that refuses it."""
        limit = request.client_max_size
        if request.content_length is not None and request.content_length > limit:
            return error(413, f"body larger than {limit} bytes")
        if request.content.is_eof():  # all there already: nothing to wait for
            return await _keep(request, self._read_timeout())
        if self.active >= self.limit:
            return error(503, "too many request bodies arriving at once; retry shortly")
        self.active += 1
        try:
            return await _keep(request, self._read_timeout())
        finally:
            self.active -= 1


async def _keep(request: web.Request, deadline: float) -> web.Response | None:
    try:
        async with asyncio.timeout(deadline):
            # A multipart form can only be parsed from the stream: parse it now, it is kept.
            if request.content_type == "multipart/form-data":
                await request.post()
            else:
                await request.read()
    except TimeoutError:
        return error(408, f"body not received within {deadline:g}s")
    except web.HTTPRequestEntityTooLarge:
        return error(413, f"body larger than {request.client_max_size} bytes")
    except web.HTTPException as exc:  # e.g. too many form fields
        return error(exc.status, exc.reason or "cannot read the body")
    except (RequestPayloadError, HttpProcessingError, ConnectionError, ValueError):
        return error(400, "cannot read the body")
    return None


BODY_READS = web.AppKey("relay-body-reads", BodyReads)
