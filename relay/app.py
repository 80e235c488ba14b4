"""Builds the aiohttp application and wires store, runtime, receiver and dispatcher."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from relay.admin import FailedAuthLimiter, require_admin
from relay.bodies import BODY_READS, BodyReads
from relay.config import LoadedConfig
from relay.dispatch import Dispatcher
from relay.httplog import HTTP_LOG, ParserErrorLog
from relay.metrics import CONTENT_TYPE, Metrics
from relay.receiver import Receiver, error
from relay.reload import Reloader, public_view
from relay.runtime import Runtime
from relay.store import Store, open_store
from relay.ui.routes import setup_ui
from relay.verify import ChannelChecks

__all__ = ["RELAY", "Relay", "StartupError", "build_app"]

log = logging.getLogger("relay.app")

DEV_SECRET = "dev-secret"


class StartupError(Exception):
    """The relay refuses to start (no secret, store unreachable...)."""


@dataclass
class Relay:
    """The running relay's parts; ``runtime`` is replaced whole on reload."""

    runtime: Runtime
    store: Store
    dispatcher: Dispatcher
    receiver: Receiver
    metrics: Metrics
    reloader: Reloader | None = None
    watch: bool = False
    session: aiohttp.ClientSession | None = None
    started_at: float = field(default_factory=time.time)
    last_reload: dict[str, Any] = field(default_factory=dict)
    maintenance: asyncio.Task[None] | None = None
    checks: ChannelChecks | None = None
    """Background checks of the channels' credentials (None: switched off)."""
    auth_failures: FailedAuthLimiter = field(default_factory=FailedAuthLimiter)
    """Wrong admin tokens per client, shared by every admin door."""

    def current(self) -> Runtime:
        return self.runtime


RELAY = web.AppKey("relay", Relay)


def check_startable(loaded: LoadedConfig) -> None:
    for warning in loaded.warnings:
        log.warning("config: %s", warning.format(loaded.source))
    auth = loaded.config.auth
    if not auth.secrets and not auth.allow_unsigned:
        raise StartupError(
            "no webhook secret configured: set auth.secrets (e.g. ${MOSAIC_WEBHOOK_SECRET}), "
            "or auth.allow_unsigned: true to accept unsigned webhooks"
        )
    if not auth.secrets:
        log.warning("auth.allow_unsigned is true: ANYONE who can reach the relay can post events")
    if any(s.get_secret_value() == DEV_SECRET for s in auth.secrets):
        log.warning(
            "the webhook secret is the example default; set MOSAIC_WEBHOOK_SECRET before "
            "exposing the relay"
        )


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error answer is JSON, and no traceback ever reaches a client."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error(exc.status, exc.reason or "error")
        for header in ("Allow", "WWW-Authenticate", "Retry-After"):
            if header in exc.headers:
                response.headers[header] = exc.headers[header]
        return response
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error(500, "internal error")


def build_app(
    loaded: LoadedConfig,
    *,
    store: Store | None = None,
    watch: bool = False,
    check_channels: bool = True,
) -> web.Application:
    """The relay as an aiohttp app; ``watch`` reloads the config when its file changes;
    ``check_channels`` verifies the channels' credentials in the background at start and
    after each reload."""
    check_startable(loaded)
    config = loaded.config
    runtime = Runtime.build(loaded)
    if store is None:
        store = open_store(
            config.store.url,
            loaded.base_dir,
            sync=config.store.sync,
            retention=config.store.retention,
        )
    holder: list[Relay] = []
    metrics = Metrics()
    dispatcher = Dispatcher(store, lambda: holder[0].runtime, metrics=metrics)
    receiver = Receiver(store, lambda: holder[0].runtime, dispatcher.notify, metrics=metrics)
    relay = Relay(
        runtime=runtime,
        store=store,
        dispatcher=dispatcher,
        receiver=receiver,
        metrics=metrics,
        watch=watch,
    )
    relay.checks = ChannelChecks(metrics) if check_channels else None
    relay.reloader = Reloader(
        relay,
        loaded.path,
        on_swap=lambda _: dispatcher.notify(),
        on_reload=relay.checks.start if relay.checks is not None else None,
    )
    holder.append(relay)

    http_log = ParserErrorLog()
    body_reads = BodyReads(
        lambda: holder[0].runtime.loaded.config.server.read_timeout,
        skip=lambda request: request.match_info.handler == receiver.handle,
    )
    app = web.Application(
        middlewares=[json_errors, body_reads.middleware],
        client_max_size=config.server.max_body_bytes,
        handler_args={
            # aiohttp closes a connection still waiting for (the rest of) its request headers
            # when this elapses: the header deadline for slow clients, and the idle keep-alive
            # limit.
            "keepalive_timeout": config.server.read_timeout,
            # How long a body nobody read (an early answer) is drained before closing.
            "lingering_time": config.server.read_timeout,
            "logger": http_log,
            # Bodies are decoded by the relay (relay/encoding.py), so that an encoding it does
            # not decode gets a JSON 415 rather than the parser's plain-text 400.
            "auto_decompress": False,
        },
    )
    app[RELAY] = relay
    app[HTTP_LOG] = http_log
    app[BODY_READS] = body_reads
    app.router.add_post(config.server.path, receiver.handle)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_route("*", "/-/reload", reload_endpoint)
    setup_ui(app, relay)
    app.on_startup.append(_on_startup)
    app.on_shutdown.append(_on_shutdown)
    app.on_cleanup.append(_on_cleanup)
    return app


async def _on_startup(app: web.Application) -> None:
    relay = app[RELAY]
    try:
        await relay.store.open()
    except Exception as exc:
        raise StartupError(f"cannot open the store: {exc}") from None
    relay.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    await relay.runtime.start(relay.session)
    await relay.dispatcher.start()
    relay.maintenance = asyncio.create_task(_prune_forever(relay), name="relay-prune")
    if relay.checks is not None:
        relay.checks.start(relay.runtime)
    relay.last_reload = {"ok": True, "at": time.time(), "sha256": relay.runtime.loaded.sha256}
    relay.metrics.config_loaded_now(relay.runtime.loaded.sha256)
    if relay.watch and relay.reloader is not None:
        relay.reloader.start_watching()


async def _on_shutdown(app: web.Application) -> None:
    relay = app[RELAY]
    relay.receiver.draining = True
    if relay.reloader is not None:
        await relay.reloader.stop()
    if relay.maintenance is not None:
        relay.maintenance.cancel()
    if relay.checks is not None:
        await relay.checks.stop()
    await relay.dispatcher.stop(relay.runtime.loaded.config.delivery.shutdown_grace)


async def _on_cleanup(app: web.Application) -> None:
    relay = app[RELAY]
    await relay.runtime.close()
    if relay.session is not None:
        await relay.session.close()
    await relay.store.close()


async def _prune_forever(relay: Relay) -> None:
    """Drop sent jobs, events and dedup keys older than ``store.retention``, now and then."""
    while True:
        retention = relay.runtime.loaded.config.store.retention
        try:
            pruned = await relay.store.prune(older_than=time.time() - retention)
            if pruned:
                log.info("pruned %d events older than the retention", pruned)
        except Exception:
            log.exception("pruning the store failed")
        await asyncio.sleep(min(3600.0, max(1.0, retention / 4)))


async def metrics_endpoint(request: web.Request) -> web.Response:
    relay = request.app[RELAY]
    try:
        relay.metrics.update_queue(await relay.store.status(), time.time())
    except Exception:
        log.exception("reading queue depth for /metrics failed")
    return web.Response(body=relay.metrics.render(), headers={"Content-Type": CONTENT_TYPE})


async def reload_endpoint(request: web.Request) -> web.Response:
    relay = request.app[RELAY]
    require_admin(request, relay.runtime, relay.auth_failures)
    if request.method != "POST":
        raise web.HTTPMethodNotAllowed(request.method, ["POST"])
    assert relay.reloader is not None
    result = await relay.reloader.reload("POST /-/reload")
    if not result["ok"]:
        return web.json_response({"error": "config not reloaded", **result}, status=400)
    return web.json_response(result)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    relay = request.app[RELAY]
    loaded = relay.runtime.loaded
    body: dict[str, Any] = {
        "config": {"path": loaded.source, "sha256": loaded.sha256},
        "last_reload": public_view(relay.last_reload),
    }
    reasons = []
    if relay.receiver.draining:
        reasons.append("shutting down")
    try:
        await relay.store.ping()
    except Exception as exc:
        reasons.append(f"store not answering: {exc}")
    if reasons:
        return web.json_response({"error": "not ready", "reasons": reasons, **body}, status=503)
    return web.json_response({"status": "ready", **body})
