"""The baseline: a bare aiohttp handler that only reads the body and answers 202.

Run as ``python -m bench.bare [--port N] [--processes N]``; prints ``listening on URL`` on stderr.
With ``--processes N`` (N > 1), N processes serve the port with ``SO_REUSEPORT``, as the relay's
workers do; the default is the one process the ingest target is defined against.
"""

from __future__ import annotations

import argparse

from aiohttp import web

from bench.serve import serve, serve_many

__all__ = ["build_app"]

PATH = "/webhooks/mosaic"
_ANSWER = b'{"status":"accepted"}'


async def handle(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=202, body=_ANSWER, content_type="application/json")


def build_app() -> web.Application:
    app = web.Application()
    app.router.add_post(PATH, handle)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    if args.processes > 1:
        serve_many(build_app, args.port, PATH, args.processes)
    else:
        serve(build_app(), args.port, PATH)


if __name__ == "__main__":
    main()
