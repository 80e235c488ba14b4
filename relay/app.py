"""The composition root: builds the aiohttp app from a loaded config, and wires the store, the
live runtime, the receiver, the dispatcher, the reloader and the UI. Only the CLI imports it."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from relay.actions.perform import ACTIONS_KEY, Actions
from relay.actions.slack import add_slack_route
from relay.actions.telegram import add_telegram_route
from relay.admin import FAILURES, FailedAuthLimiter, require_admin
from relay.bodies import BODY_READS, BodyReads
from relay.config import LoadedConfig, RelayConfig
from relay.delivery.clock import SYSTEM_CLOCK, Clock
from relay.digest.flusher import Flusher
from relay.dispatch import Dispatcher
from relay.httplog import HTTP_LOG, ParserErrorLog
from relay.live import LiveRuntime
from relay.metrics import CONTENT_TYPE, Metrics
from relay.mosaic.client import MosaicClient
from relay.mosaic.names import AgentNames, NameResolver
from relay.mosaic.reconcile import Reconciler
from relay.mosaic.settings import MosaicSettings
from relay.mosaic.stale import StaleWatch
from relay.receiver import Receiver, error
from relay.rejections import RejectionLog
from relay.reload import Reloader, public_view
from relay.runtime import Runtime
from relay.store import Store, open_store
from relay.ui.routes import setup_ui
from relay.ui.state import UiState
from relay.verify import ChannelChecks

__all__ = ["RELAY", "Relay", "StartupError", "build_app", "log_warnings", "shut_down"]

log = logging.getLogger("relay.app")

DEV_SECRET = "dev-secret"
BACKGROUND_STOP_S = 5.0
"""How long the shutdown waits for the Mosaic API jobs to stop once cancelled."""


class StartupError(Exception):
    """The relay refuses to start (the store cannot be opened...)."""


@dataclass
class Relay:
    """The running relay's parts; ``live`` holds the runtime, swapped whole on reload."""

    live: LiveRuntime
    store: Store
    metrics: Metrics
    dispatcher: Dispatcher
    receiver: Receiver
    checks: ChannelChecks | None
    """Background checks of the channels' credentials (None: switched off)."""
    auth_failures: FailedAuthLimiter
    """Wrong admin tokens per client, shared by every admin door."""
    watch: bool = False
    peers: Callable[[], None] | None = None
    """Tells the other workers of ``relay serve`` to reload (None: this process is alone)."""
    worker: int | None = None
    """This process's number among the workers of ``relay serve`` (None: it serves alone)."""
    reloader: Reloader = field(init=False)
    session: aiohttp.ClientSession | None = None
    maintenance: asyncio.Task[None] | None = None
    stopping: asyncio.Task[None] | None = None
    reconciler: Reconciler = field(init=False)
    stale_watch: StaleWatch = field(init=False)
    names: NameResolver = field(init=False)
    """Agents' names in Mosaic, resolved in the background (idle while ``agent_names`` is off)."""
    mosaic_tasks: list[asyncio.Task[None]] = field(default_factory=list)
    """Reconciliation and the stale-run watch (each idles while its settings say off)."""
    actions: Actions = field(init=False)
    """Chat actions' presses (Resume, Cancel, Re-run buttons), performed in the background."""
    flusher: Flusher = field(init=False)
    """Digest windows and quiet periods that ended, each sent as one message."""
    flushing: asyncio.Task[None] | None = None

    def mosaic_settings(self) -> MosaicSettings:
        return self.live.current.loaded.config.mosaic

    def mosaic_client(self, settings: MosaicSettings) -> MosaicClient:
        """A client of the API settings serving now, on the relay's HTTP session."""
        assert settings.api_key is not None, "the Mosaic API is off"
        return MosaicClient(settings.api_key, base_url=settings.api_url, session=self.session)

    async def start_channels(self, runtime: Runtime) -> None:
        """Start ``runtime``'s channels on the relay's HTTP session (open once the app starts)."""
        assert self.session is not None, "the app has not started"
        await runtime.start(self.session)


RELAY = web.AppKey("relay", Relay)


def log_warnings(loaded: LoadedConfig) -> None:
    """The config's warnings, and loud ones for an unsigned or example-secret webhook."""
    for warning in loaded.warnings:
        log.warning("config: %s", warning.format(loaded.source))
    auth = loaded.config.auth
    if auth.allow_unsigned and not auth.secrets:
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
    workers: int = 1,
    peers: Callable[[], None] | None = None,
    worker: int | None = None,
    warn: bool = True,
    clock: Clock = SYSTEM_CLOCK,
) -> web.Application:
    """The relay as an aiohttp app; ``watch`` reloads the config when its file changes;
    ``check_channels`` verifies the channels' credentials in the background at start and
    after each reload. ``workers``: how many processes serve this port and store (this one
    among them); ``peers`` tells the others to reload; ``warn`` logs the config's warnings;
    ``clock`` is the time of acceptance, delivery and digest windows (tests move it)."""
    if warn:
        log_warnings(loaded)
    config = loaded.config
    if store is None:
        store = open_store(
            config.store.url,
            loaded.base_dir,
            sync=config.store.sync,
            retention=config.store.retention,
            workers=workers,
        )
    rejections = RejectionLog()
    relay = _assemble(
        loaded,
        store,
        rejections,
        watch=watch,
        check_channels=check_channels,
        workers=workers,
        clock=clock,
    )
    relay.peers, relay.worker = peers, worker
    live = relay.live
    http_log = ParserErrorLog()
    reads_own_body: set[Callable[..., Any]] = {relay.receiver.handle}
    """Handlers that read their body themselves, after checking who sends it."""
    body_reads = BodyReads(
        lambda: live.current.server.read_timeout,
        skip=lambda request: request.match_info.handler in reads_own_body,
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
    app[ACTIONS_KEY] = relay.actions
    app[HTTP_LOG] = http_log
    app[BODY_READS] = body_reads
    app.router.add_post(config.server.path, relay.receiver.handle)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_route("*", "/-/reload", reload_endpoint)
    reads_own_body.update(_add_press_routes(app, relay, clock))
    ui = UiState(
        store=store,
        live=live,
        notify=relay.dispatcher.notify,
        registry=relay.metrics.registry,
        rejections=rejections,
        limiter=relay.auth_failures,
        checks=relay.checks,
        last_reconcile=lambda: relay.reconciler.last,
    )
    setup_ui(app, ui)
    app.on_startup.append(_on_startup)
    app.on_shutdown.append(shut_down)
    app.on_cleanup.append(_on_cleanup)
    return app


def _add_press_routes(
    app: web.Application, relay: Relay, clock: Clock
) -> list[Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """Where chat action presses arrive (``actions.slack`` / ``actions.telegram``); their paths
    are read at start (a reload that moves them needs a restart). Returns their handlers: each
    reads its own body, bounded, once the sender is authenticated."""
    live = relay.live
    actions = live.current.loaded.config.actions

    def config() -> RelayConfig:
        return live.current.loaded.config

    handlers: list[Callable[[web.Request], Awaitable[web.StreamResponse]]] = []
    if actions.slack is not None:
        slack = add_slack_route(
            app,
            actions.slack.path,
            config=config,
            limiter=relay.auth_failures,
            session=lambda: relay.session,
            clock=clock.now,
        )
        handlers.append(slack.handle)
    if actions.telegram is not None:
        telegram = add_telegram_route(
            app,
            actions.telegram.path,
            config=config,
            channel=lambda name: live.current.channels.get(name),
            limiter=relay.auth_failures,
        )
        handlers.append(telegram.handle)
    return handlers


def _assemble(
    loaded: LoadedConfig,
    store: Store,
    rejections: RejectionLog,
    *,
    watch: bool,
    check_channels: bool,
    workers: int = 1,
    clock: Clock = SYSTEM_CLOCK,
) -> Relay:
    """The parts, each given only what it uses, and who hears of a reload."""
    api_names = AgentNames()

    def build(loaded: LoadedConfig) -> Runtime:
        return Runtime.build(loaded, api_names)

    live = LiveRuntime(build(loaded))
    metrics = Metrics()
    dispatcher = Dispatcher(store, lambda: live.current, clock=clock, metrics=metrics)
    receiver = Receiver(
        store,
        lambda: live.current,
        dispatcher.notify,
        metrics=metrics,
        rejections=rejections,
        clock=clock.now,
    )
    checks = ChannelChecks(metrics) if check_channels else None
    relay = Relay(
        live=live,
        store=store,
        metrics=metrics,
        dispatcher=dispatcher,
        receiver=receiver,
        checks=checks,
        # N workers, each its own count: together about the limit one process has.
        auth_failures=FailedAuthLimiter(failures=math.ceil(FAILURES / workers)),
        watch=watch,
    )
    relay.reloader = Reloader(
        live, loaded.path, start=relay.start_channels, on_loaded=log_warnings, build=build
    )
    mosaic = (store, receiver.ingest, relay.mosaic_settings, relay.mosaic_client)
    relay.reconciler = Reconciler(*mosaic, metrics=metrics)
    relay.stale_watch = StaleWatch(*mosaic, metrics=metrics)
    live.on_swap(lambda _: relay.reconciler.pacer.wake())
    live.on_swap(lambda _: relay.stale_watch.pacer.wake())
    relay.names = NameResolver(store, api_names, relay.mosaic_settings, relay.mosaic_client)
    relay.actions = Actions(
        store,
        lambda: live.current,
        relay.mosaic_client,
        clock=clock.now,
        on_result=lambda action, result: metrics.chat_actions.labels(action, result).inc(),
    )
    relay.flusher = Flusher(
        store, lambda: live.current, dispatcher.notify, clock=clock, metrics=metrics
    )
    receiver.ingest.on_hold = relay.flusher.wake
    live.on_swap(lambda _: relay.flusher.wake())
    live.on_swap(lambda _: dispatcher.notify())
    live.on_swap(lambda runtime: metrics.config_loaded_now(runtime.loaded.sha256))
    live.on_reload(lambda result: metrics.config_reloaded(bool(result["ok"])))
    if checks is not None:

        def check_again(result: dict[str, Any]) -> None:
            if result["ok"]:
                checks.start(live.current)

        live.on_reload(check_again)
    return relay


async def _on_startup(app: web.Application) -> None:
    relay = app[RELAY]
    try:
        await relay.store.open()
    except Exception as exc:
        raise StartupError(f"cannot open the store: {exc}") from None
    relay.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    runtime = relay.live.current
    await relay.start_channels(runtime)
    await relay.dispatcher.start()
    relay.maintenance = asyncio.create_task(_prune_forever(relay), name="relay-prune")
    relay.flushing = asyncio.create_task(relay.flusher.run_forever(), name="relay-digests")
    if relay.checks is not None:
        relay.checks.start(runtime)
    relay.mosaic_tasks = [
        asyncio.create_task(relay.reconciler.run_forever(), name="relay-reconcile"),
        asyncio.create_task(relay.stale_watch.run_forever(), name="relay-stale-watch"),
        asyncio.create_task(relay.names.run_forever(), name="relay-agent-names"),
    ]
    relay.metrics.config_loaded_now(runtime.loaded.sha256)
    if relay.watch:
        relay.reloader.start_watching()


async def shut_down(app: web.Application) -> None:
    """New webhooks get 503; reloads, checks and pruning stop; in-flight sends get
    ``delivery.shutdown_grace`` to finish, the rest go back to the store.

    The app's ``on_shutdown``. ``relay serve`` calls it first, while the server still answers,
    then cleans the app up (which calls it again: it then only waits for the first call)."""
    relay = app[RELAY]
    if relay.stopping is None:
        relay.stopping = asyncio.create_task(_stop(relay), name="relay-shutdown")
    await relay.stopping


async def _stop(relay: Relay) -> None:
    relay.receiver.draining = True
    await relay.reloader.stop()
    for task in (relay.maintenance, relay.flushing):
        if task is not None:
            task.cancel()
    for task in relay.mosaic_tasks:
        task.cancel()
    if relay.mosaic_tasks:
        # Bounded: a background job that does not stop must not hold the shutdown.
        _, stuck = await asyncio.wait(relay.mosaic_tasks, timeout=BACKGROUND_STOP_S)
        for task in stuck:
            log.warning("background task %s did not stop in time", task.get_name())
    if relay.checks is not None:
        await relay.checks.stop()
    grace = relay.live.current.loaded.config.delivery.shutdown_grace
    await relay.actions.stop(grace)
    await relay.dispatcher.stop(grace)


async def _on_cleanup(app: web.Application) -> None:
    relay = app[RELAY]
    await relay.live.current.close()
    if relay.session is not None:
        await relay.session.close()
    await relay.store.close()


async def _prune_forever(relay: Relay) -> None:
    """Drop sent jobs, events and dedup keys older than ``store.retention``, now and then."""
    while True:
        retention = relay.live.current.loaded.config.store.retention
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
        relay.metrics.update_held(await relay.store.held_groups())
    except Exception:
        log.exception("reading queue depth for /metrics failed")
    return web.Response(body=relay.metrics.render(), headers={"Content-Type": CONTENT_TYPE})


async def reload_endpoint(request: web.Request) -> web.Response:
    relay = request.app[RELAY]
    require_admin(request, relay.live.current, relay.auth_failures)
    if request.method != "POST":
        raise web.HTTPMethodNotAllowed(request.method, ["POST"])
    result = await relay.reloader.reload("POST /-/reload")
    if not result["ok"]:
        return web.json_response({"error": "config not reloaded", **result}, status=400)
    if relay.peers is not None:
        relay.peers()
    return web.json_response(result)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    relay = request.app[RELAY]
    loaded = relay.live.current.loaded
    body: dict[str, Any] = {
        "config": {"path": loaded.source, "sha256": loaded.sha256},
        "last_reload": public_view(relay.live.last_reload),
    }
    if relay.worker is not None:
        body["worker"] = relay.worker
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
