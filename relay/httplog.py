"""aiohttp's server log without the raw bytes of malformed requests.

When aiohttp's HTTP parser refuses a request (a header line with a NUL, a bad request line...),
it logs the error at ERROR with a traceback whose text quotes the offending line as sent: that
may be ``X-Mosaic-Signature: <the secret>``, and any client can send as many as it likes.
``ParserErrorLog`` stands in for aiohttp's ``aiohttp.server`` logger (``handler_args["logger"]``):
such an error becomes one WARNING line naming the client and the error's kind, at most once per
client per minute; every other line passes through unchanged.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

__all__ = ["HTTP_LOG", "ParserErrorLog"]

SERVER_LOGGER = "aiohttp.server"


class ParserErrorLog(logging.LoggerAdapter[logging.Logger]):
    """A logger for aiohttp's request handler: parser errors summarised and rate-limited."""

    def __init__(
        self,
        logger: logging.Logger | None = None,
        *,
        every: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        super().__init__(logger or logging.getLogger(SERVER_LOGGER), {})
        self.every = every
        self.clock = clock
        self._max_clients = max_clients
        self._logged_at: OrderedDict[str, float] = OrderedDict()

    def log(
        self,
        level: int,
        msg: object,
        *args: object,
        exc_info: Any = None,
        stack_info: bool = False,
        stacklevel: int = 1,
        extra: Mapping[str, object] | None = None,
        **kwargs: Any,
    ) -> None:
        refused = _parser_error(exc_info)
        if refused is None:
            super().log(
                level, msg, *args, exc_info=exc_info, stack_info=stack_info,
                stacklevel=stacklevel, extra=extra, **kwargs,
            )  # fmt: skip
            return
        # aiohttp's line is "Error handling request from %s" with the peer's address.
        client = str(args[0]) if args else "unknown"
        if self._due(client):
            self.logger.log(
                min(level, logging.WARNING),
                "malformed HTTP request from %s refused (%d %s); more from this client in the "
                "next %gs are not logged",
                client,
                refused.code,
                type(refused).__name__,
                self.every,
            )

    def _due(self, client: str) -> bool:
        """Whether ``client`` may have a line now (and if so, note that it had one)."""
        now = self.clock()
        last = self._logged_at.get(client)
        if last is not None and now - last < self.every:
            return False
        self._logged_at[client] = now
        self._logged_at.move_to_end(client)
        while len(self._logged_at) > self._max_clients:
            self._logged_at.popitem(last=False)
        return True


def _parser_error(exc_info: Any) -> HttpProcessingError | None:
    if exc_info is True:
        exc_info = sys.exc_info()
    if isinstance(exc_info, tuple):
        exc_info = exc_info[1]
    return exc_info if isinstance(exc_info, HttpProcessingError) else None


HTTP_LOG = web.AppKey("relay-http-log", ParserErrorLog)
"""The app's ``ParserErrorLog`` (the one given to aiohttp's request handler)."""
