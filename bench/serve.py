"""Run an aiohttp app on 127.0.0.1 until SIGTERM/SIGINT, announcing its URL on stderr."""

from __future__ import annotations

import asyncio
import signal
import sys

from aiohttp import web

__all__ = ["serve"]


def serve(app: web.Application, port: int, path: str = "") -> None:
    asyncio.run(_serve(app, port, path))


async def _serve(app: web.Application, port: int, path: str) -> None:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    host, bound = runner.addresses[0][:2]
    print(f"listening on http://{host}:{bound}{path}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
