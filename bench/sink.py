"""A local Slack incoming-webhook sink: answers ``ok`` to ``POST /services/...`` and records when
each message arrived and which run it was about.

``GET /-/count`` answers ``{"count": N}``; ``GET /-/arrivals`` answers every arrival as
``[monotonic_time, run_id or null]`` (the run id found in the delivered text/blocks). Times are
``time.monotonic()``, comparable across processes on one machine.
Run as ``python -m bench.sink [--port N]``; prints ``listening on URL`` on stderr.
"""

from __future__ import annotations

import argparse
import time

from aiohttp import web

from bench.common import RUN_ID_PATTERN
from bench.serve import serve

__all__ = ["Sink"]


class Sink:
    def __init__(self) -> None:
        self.arrivals: list[tuple[float, bytes]] = []

    async def post(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.arrivals.append((time.monotonic(), body))
        return web.Response(text="ok")

    async def count(self, request: web.Request) -> web.Response:
        return web.json_response({"count": len(self.arrivals)})

    async def dump(self, request: web.Request) -> web.Response:
        rows = []
        for at, body in self.arrivals:
            found = RUN_ID_PATTERN.search(body.decode("utf-8", "replace"))
            rows.append([at, found.group(0) if found else None])
        return web.json_response({"arrivals": rows})

    def app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post("/services/{tail:.*}", self.post)
        app.router.add_get("/-/count", self.count)
        app.router.add_get("/-/arrivals", self.dump)
        return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sink")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    serve(Sink().app(), args.port)


if __name__ == "__main__":
    main()
