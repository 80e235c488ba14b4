"""``relay`` command line: serve | check | test | route-test | send | send-sample | init | dlq |
status | reconcile | telegram set-webhook | schema."""

from __future__ import annotations

import argparse
import asyncio
import errno
import functools
import json
import logging
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Collection, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from relay.config import ConfigError, LoadedConfig, RelayConfig, load_config, load_sections
from relay.confmodel import route_label
from relay.dryrun import DryRunError, route_test, sample_bytes, sample_names
from relay.ingest import Ingest
from relay.logs import setup_logging
from relay.mosaic.client import MosaicClient
from relay.mosaic.reconcile import PassReport, Reconciler
from relay.mosaic.settings import MosaicSettings
from relay.receiver import SIGNATURE_HEADER
from relay.render.environment import duration
from relay.routing import Router
from relay.runtime import Runtime
from relay.starter import starter_config
from relay.store import Store, StoreError, display_url, open_store
from relay.verify import check_online, report, send_test
from relay.workers import (
    CONTROL_READY,
    CONTROL_RELOADED,
    STOP_MARGIN_S,
    Plan,
    WorkerLink,
    can_share_port,
    exec_supervisor,
    reserve_port,
    resolve_workers,
)

__all__ = ["main"]

log = logging.getLogger("relay")


class CliError(Exception):
    """A one-line message for the user; exit 1."""


def default_config_path() -> str:
    return os.environ.get("RELAY_CONFIG", "relay.yaml")


def load(path: str, sections: Collection[str] | None = None) -> LoadedConfig:
    """The whole config, or only ``sections`` for a command that neither routes nor sends (so
    that a channel's unset token does not stop it)."""
    if not Path(path).exists():
        raise CliError(
            f"no config file at {path}: pass -c FILE or set RELAY_CONFIG, or write a starter "
            "one with `relay init`"
        )
    try:
        return load_config(path) if sections is None else load_sections(path, sections)
    except ConfigError as exc:
        raise CliError(str(exc)) from None


# --- serve -------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    """Every line on stderr is a log line (JSON in JSON mode), a refusal to start included.

    One process serves when ``server.workers`` (or ``--workers``) is 1; else this process
    supervises that many workers (``relay.workers``), each of them this command with
    ``--worker``."""
    setup_logging(args.log_format, worker=args.worker)
    try:
        loaded = load(args.config)
        count = args.workers or resolve_workers(loaded.config.server.workers)
        if count > 1 and not can_share_port():
            log.warning("this system cannot share a port between processes: serving with one")
            count = 1
        watch = not args.no_watch
        if args.worker is not None:
            link = WorkerLink(args.worker, args.control_fd)
            return asyncio.run(
                _serve(loaded, args.host, args.port, watch=watch, workers=count, link=link)
            )
        if count > 1:
            _become_supervisor(loaded, args, count)
        return asyncio.run(_serve(loaded, args.host, args.port, watch=watch))
    except CliError as exc:
        log.error("%s", exc)
        return 1


async def _serve(
    loaded: LoadedConfig,
    host: str | None,
    port: int | None,
    *,
    watch: bool = True,
    workers: int = 1,
    link: WorkerLink | None = None,
) -> int:
    """Serve in this process: the whole relay, or (``link`` given) one of ``workers``."""
    from relay.app import RELAY, StartupError, build_app, shut_down

    peers = None if link is None else functools.partial(link.send, CONTROL_RELOADED)
    try:
        app = build_app(
            loaded,
            watch=watch,
            workers=workers,
            peers=peers,
            worker=None if link is None else link.index,
            warn=link is None,
        )
    except StartupError as exc:
        raise CliError(str(exc)) from None
    server = loaded.config.server
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0, handle_signals=False)
    try:
        await runner.setup()
    except StartupError as exc:
        await runner.cleanup()
        raise CliError(str(exc)) from None
    bind_host, bind_port = host or server.host, server.port if port is None else port
    try:
        site = web.TCPSite(runner, bind_host, bind_port, reuse_port=link is not None or None)
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise CliError(_bind_failure(exc, bind_host, bind_port)) from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloader = app[RELAY].reloader
    pending: set[asyncio.Task[Any]] = set()

    def on_sighup() -> None:
        task = asyncio.create_task(reloader.reload("SIGHUP"))
        pending.add(task)
        task.add_done_callback(pending.discard)

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    bound = runner.addresses[0]
    url = f"http://{bound[0]}:{bound[1]}{server.path}"
    store = display_url(loaded.config.store.url)
    if link is None:
        log.info(
            "relay listening on %s (config %s, store %s)",
            url,
            loaded.source,
            store,
            extra={"url": url, "config": loaded.source, "store": store},
        )
    else:
        log.debug("worker serving %s", url)
        link.send(CONTROL_READY)
        orphaned = asyncio.create_task(link.parent_gone())
        orphaned.add_done_callback(lambda _: stop.set())
    await stop.wait()
    log.info("relay stopping: finishing in-flight deliveries")
    # Drain while still answering: new webhooks get 503 (Connection: close), sends finish.
    await shut_down(app)
    await runner.cleanup()
    return 0


def _become_supervisor(loaded: LoadedConfig, args: argparse.Namespace, count: int) -> None:
    """Check the store and the port once, then turn this process into the supervisor of
    ``count`` workers (``relay.workers``); returns only by raising ``CliError``."""
    from relay.app import log_warnings

    log_warnings(loaded)
    config = loaded.config

    async def check_store() -> None:
        store = open_store(config.store.url, loaded.base_dir, sync=config.store.sync)
        await store.open()  # one clear refusal, and the schema made once, before any worker
        await store.close()

    try:
        asyncio.run(check_store())
    except StoreError as exc:
        raise CliError(f"cannot open the store: {exc}") from None
    host = args.host or config.server.host
    port = config.server.port if args.port is None else args.port
    try:
        reserved = reserve_port(host, port)
    except OSError as exc:
        raise CliError(_bind_failure(exc, host, port)) from None
    bound = reserved.getsockname()
    argv = ["serve", "-c", args.config, "--host", host, "--port", str(bound[1])]
    argv += ["--log-format", args.log_format, "--workers", str(count)]
    if args.no_watch:
        argv.append("--no-watch")
    exec_supervisor(
        Plan(
            port_fd=reserved.fileno(),
            workers=count,
            stop_timeout=config.delivery.shutdown_grace + STOP_MARGIN_S,
            url=f"http://{bound[0]}:{bound[1]}{config.server.path}",
            config=loaded.source,
            store=display_url(config.store.url),
            log_format=args.log_format,
            worker_argv=tuple(argv),
        )
    )


def _bind_failure(exc: OSError, host: str, port: int) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"cannot start: port {port} on {host} is in use: pass --port or set server.port"
    if exc.errno == errno.EACCES:
        return f"cannot start: port {port} needs privileges: use one above 1023 (server.port)"
    if exc.errno in (errno.EADDRNOTAVAIL, socket.EAI_NONAME):
        return f"cannot start: {host} is not an address of this machine (server.host or --host)"
    return f"cannot start: cannot listen on {host}:{port}: {exc.strerror or exc}"


# --- check -------------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    """Every error at once, in file order, one per line on stderr; else the summary, and the
    warnings on stderr (exit 0)."""
    try:
        loaded = load_config(args.config)
    except ConfigError as exc:
        issues = sorted(exc.issues, key=lambda issue: (issue.line is None, issue.line or 0))
        for issue in issues:
            print(issue.format(exc.source), file=sys.stderr)
        print(f"relay: {exc.source}: {len(issues)} error(s)", file=sys.stderr)
        return 1
    print(summary(loaded))
    for warning in loaded.warnings:
        print(warning.format(loaded.source), file=sys.stderr)
    if loaded.warnings:
        print(f"relay: {loaded.source}: {len(loaded.warnings)} warning(s)", file=sys.stderr)
    if args.online:
        results = asyncio.run(check_online(loaded))
        print(report(results))
        return 0 if all(result.ok for result in results) else 1
    return 0


def summary(loaded: LoadedConfig) -> str:
    config = loaded.config
    lines = [f"{loaded.source}: OK (sha256 {loaded.sha256[:12]})"]
    lines.append(f"  server: http://{config.server.host}:{config.server.port}{config.server.path}")
    secrets = len(config.auth.secrets)
    lines.append(
        f"  auth: {secrets} secret(s)"
        + (" (unsigned allowed)" if config.auth.allow_unsigned else "")
    )
    lines.append(f"  store: {display_url(config.store.url)} (sync {config.store.sync})")
    admin = "on" if config.server.admin_token is not None else "off (no server.admin_token)"
    lines.append(f"  admin endpoints: {admin}")
    lines.append(f"  channels ({len(config.channels)}):")
    for name, channel in config.channels.items():
        destinations = [destination for destination, _ in channel.destinations(name)]
        each = f": {', '.join(destinations)}" if destinations != [name] else ""
        lines.append(f"    - {name} ({channel.type}){each}")
    lines.append(f"  routes ({len(config.routes)}):")
    for index, route in enumerate(config.routes):
        label = route_label(route.name, index)
        extra = f", template {route.template}" if route.template else ""
        extra += ", stop" if route.stop else ""
        extra += f", mode {route.mode}" if route.mode != "post" else ""
        lines.append(f"    - {label} -> {', '.join(route.to)}{extra}")
    if config.templates:
        lines.append(f"  templates: {', '.join(config.templates)}")
    if loaded.unset_vars:
        lines.append(f"  unset environment variables: {', '.join(loaded.unset_vars)}")
    return "\n".join(lines)


# --- route-test --------------------------------------------------------------------------------


def cmd_route_test(args: argparse.Namespace) -> int:
    loaded = load(args.config)
    try:
        raw = Path(args.event).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {args.event}: {exc.strerror}") from None
    try:
        result = route_test(Runtime.build(loaded), raw)
    except DryRunError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    event = result["event"]
    print(f"event: {event['flag']} {event['status']} run {event['run_id']}")
    if not result["deliveries"]:
        print("no route matches: nothing would be sent")
    for delivery in result["deliveries"]:
        held = delivery.get("held")
        when = ""
        if held is not None:
            what = "digest" if held["kind"] == "digest" else "after the quiet hours"
            when = f" → {what} at {held['at']}"
        print(
            f"\n-> {delivery['channel']} (route {delivery['route']}, template "
            f"{delivery['template'] or 'default'}){when}"
        )
        if "error" in delivery:
            print(f"   render error: {delivery['error']}")
            continue
        if delivery.get("subject"):
            print(f"   subject: {delivery['subject']}")
        for line in delivery["text"].splitlines():
            print(f"   {line}")
    return 0


# --- test --------------------------------------------------------------------------------------


def cmd_test(args: argparse.Namespace) -> int:
    """One marked test message through a real channel; the store is not touched."""
    loaded = load(args.config)
    destinations = [
        destination
        for name, channel in loaded.config.channels.items()
        for destination, _ in channel.destinations(name)
    ]
    if args.channel not in loaded.config.channels and args.channel not in destinations:
        known = ", ".join(loaded.config.channels) or "none"
        raise CliError(f"no channel named '{args.channel}' (configured: {known})")
    try:
        raw = sample_bytes("test") if args.event is None else Path(args.event).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {args.event}: {exc.strerror}") from None
    try:
        outcomes = asyncio.run(send_test(loaded, args.channel, raw))
    except DryRunError as exc:
        raise CliError(str(exc)) from None
    for outcome in outcomes:
        print(outcome.line())
    return 0 if all(outcome.ok for outcome in outcomes) else 1


# --- send-sample and send ----------------------------------------------------------------------


def cmd_send_sample(args: argparse.Namespace) -> int:
    names = sample_names()
    if args.kind == "all":
        chosen = names
    elif args.kind in names:
        chosen = [args.kind]
    else:
        raise CliError(f"unknown sample '{args.kind}' (one of: all, {', '.join(names)})")
    events = [(name, sample_bytes(name)) for name in chosen]
    return _post(args, events)


def cmd_send(args: argparse.Namespace) -> int:
    try:
        body = Path(args.event).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {args.event}: {exc.strerror}") from None
    return _post(args, [(Path(args.event).name, body)])


def _post(args: argparse.Namespace, events: list[tuple[str, bytes]]) -> int:
    url, secret = args.url, args.secret
    if url is None or secret is None:
        loaded = load(args.config, ("server", "auth"))
        server = loaded.config.server
        if url is None:
            host = "127.0.0.1" if server.host in ("0.0.0.0", "::", "") else server.host
            url = f"http://{host}:{server.port}{server.path}"
        if secret is None and loaded.config.auth.secrets:
            secret = loaded.config.auth.secrets[0].get_secret_value()
    if args.fresh:
        events = _with_fresh_run_ids(events)
    return asyncio.run(_send_events(url, secret, events))


def _with_fresh_run_ids(events: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The same events under new run ids (one new id per original run), so none is a duplicate."""
    renamed: dict[str, str] = {}
    fresh = []
    for label, body in events:
        try:
            payload = json.loads(body)
        except ValueError:
            raise CliError(
                f"{label} is not JSON: --fresh needs an event to give a new run id"
            ) from None
        if isinstance(payload, dict) and isinstance(payload.get("run_id"), str):
            payload["run_id"] = renamed.setdefault(payload["run_id"], str(uuid.uuid4()))
        fresh.append((label, json.dumps(payload, ensure_ascii=False).encode()))
    return fresh


async def _send_events(url: str, secret: str | None, events: Sequence[tuple[str, bytes]]) -> int:
    headers = {"Content-Type": "application/json"}
    if secret:
        headers[SIGNATURE_HEADER] = secret
    failed = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        for label, body in events:
            try:
                async with session.post(url, data=body, headers=headers) as answer:
                    text = await answer.text()
                    status = answer.status
            except aiohttp.ClientError as exc:
                raise CliError(f"cannot reach {url}: {exc}") from None
            print(f"{label}: {status} {text.strip()}")
            failed += status >= 300
    return 1 if failed else 0


# --- init --------------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    text = starter_config(slack_webhook=args.slack_webhook, telegram_chat=args.telegram_chat)
    if args.config == "-":  # e.g. from a container: relay init -c - > relay-config/relay.yaml
        print(text, end="")
        return 0
    target = Path(args.config)
    if target.exists() and not args.force:
        raise CliError(f"{target} exists: pass --force to replace it")
    try:
        target.write_text(text)
        target.chmod(0o600)  # it may hold a Slack webhook URL, a secret
    except OSError as exc:
        raise CliError(f"cannot write {target}: {exc.strerror or exc}") from None
    needs = ["MOSAIC_WEBHOOK_SECRET"] + (["TELEGRAM_BOT_TOKEN"] if args.telegram_chat else [])
    print(f"wrote {target}")
    print(f"next: export {' '.join(f'{name}=...' for name in needs)}")
    print(f"      relay check -c {target} && relay serve -c {target}")
    return 0


# --- store commands ----------------------------------------------------------------------------


async def _with_store(loaded: LoadedConfig, action: Any) -> Any:
    settings = loaded.config.store
    store = open_store(
        settings.url,
        loaded.base_dir,
        sync=settings.sync,
        create=False,
        retention=settings.retention,
    )
    try:
        await store.open()
    except StoreError as exc:
        raise CliError(str(exc)) from None
    try:
        return await action(store)
    finally:
        await store.close()


def cmd_status(args: argparse.Namespace) -> int:
    loaded = load(args.config, ("store",))
    rows = asyncio.run(_with_store(loaded, lambda store: store.status()))
    if not rows:
        print("no delivery jobs")
        return 0
    now = time.time()
    print(f"{'channel':<24} {'state':<9} {'count':>7}  oldest")
    for row in rows:
        age = "" if row.oldest_created_at is None else duration(now - row.oldest_created_at)
        print(f"{row.channel:<24} {row.state:<9} {row.count:>7}  {age}")
    return 0


def cmd_dlq(args: argparse.Namespace) -> int:
    loaded = load(args.config, ("store",))
    if args.dlq_command == "list":
        jobs = asyncio.run(_with_store(loaded, lambda store: store.dead_letters(limit=args.limit)))
        if not jobs:
            print("no dead letters")
        now = time.time()
        for job in jobs:
            print(
                f"{job.id}  {job.channel:<16} run {job.run_id}  attempts {job.attempts}  "
                f"age {duration(now - job.created_at)}  {job.last_error or ''}"
            )
        return 0
    if not args.all and not args.id:
        raise CliError("say which dead letter to replay: an ID, or --all")
    job_id = None if args.all else args.id
    count = asyncio.run(_with_store(loaded, lambda store: store.replay(job_id, now=time.time())))
    if job_id and not count:
        raise CliError(f"no dead letter with id {job_id}")
    print(f"replayed {count} dead letter(s); a running relay delivers them shortly")
    return 0


def _client(settings: MosaicSettings) -> MosaicClient:
    assert settings.api_key is not None
    return MosaicClient(settings.api_key, base_url=settings.api_url)


async def _reconcile(loaded: LoadedConfig, store: Store, dry_run: bool) -> PassReport:
    """One pass by hand: recovered ends are stored with their jobs; a running relay (or the
    next start) delivers them."""
    router = Router.from_config(loaded.config)
    ingest = Ingest(store, lambda: router, lambda: None)
    reconciler = Reconciler(store, ingest, lambda: loaded.config.mosaic, _client)
    return await reconciler.run_once(dry_run=dry_run, lease=False)


def cmd_reconcile(args: argparse.Namespace) -> int:
    if not args.once:
        raise CliError("say --once (`relay serve` reconciles every mosaic.reconcile.interval)")
    loaded = load(args.config)
    mosaic = loaded.config.mosaic
    if mosaic.api_key is None:
        raise CliError("mosaic.api_key is not set: reconciling needs Mosaic's API")
    if mosaic.reconcile == "off":
        raise CliError("mosaic.reconcile is off")
    report = asyncio.run(_with_store(loaded, lambda store: _reconcile(loaded, store, args.dry_run)))
    if report.result != "ok":
        raise CliError(f"reconciliation failed ({report.result}): {report.error}")
    verb = "would recover" if args.dry_run else "recovered"
    print(
        f"{report.listed} ended run(s) in the last {duration(mosaic.reconcile.lookback)}, "
        f"{verb} {len(report.recovered)} run end(s) the relay never received "
        f"({report.api_calls} API calls)"
    )
    for run_id in report.recovered:
        print(f"  {verb} run {run_id}")
    if report.recovered and not args.dry_run:
        print("a running relay delivers them shortly")
    return 0


# --- telegram ----------------------------------------------------------------------------------


def cmd_telegram(args: argparse.Namespace) -> int:
    """``set-webhook``: one line per bot; exit 1 when any bot refused."""
    from relay.actions.telegram_webhook import WebhookError, bot_hooks, set_webhooks

    loaded = load(args.config)
    try:
        hooks = bot_hooks(loaded, args.url)
    except WebhookError as exc:
        raise CliError(str(exc)) from None
    if args.dry_run:
        for hook in hooks:
            print(f"would set the webhook of {hook.describe()} (callback queries, secret token)")
        return 0
    failed = 0
    for hook, problem in asyncio.run(set_webhooks(loaded, hooks)):
        if problem:
            failed += 1
            print(f"{hook.channel}: webhook not set: {problem}", file=sys.stderr)
        else:
            print(f"webhook set for {hook.describe()}")
    return 1 if failed else 0


# --- schema ------------------------------------------------------------------------------------

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def config_schema() -> dict[str, Any]:
    """The JSON Schema of relay.yaml (``config/relay.schema.json`` is this, committed)."""
    schema = RelayConfig.model_json_schema(by_alias=True)
    schema.pop("title", None)
    return {"$schema": SCHEMA_DIALECT, "title": "Mosaic Relay config (relay.yaml)", **schema}


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(config_schema(), indent=2, ensure_ascii=False))
    return 0


def _version() -> str:
    try:
        return metadata.version("mosaic-relay")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


# --- parser ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relay", description=__doc__)
    parser.add_argument("--version", action="version", version=f"relay {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument(
            "-c",
            "--config",
            default=default_config_path(),
            help="config file (default: $RELAY_CONFIG, else ./relay.yaml)",
        )
        return p

    serve = command("serve", "run the relay")
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port (0 = any free port)")
    serve.add_argument("--log-format", choices=["auto", "json", "text"], default="auto")
    serve.add_argument(
        "--no-watch", action="store_true", help="do not reload when the config file changes"
    )
    serve.add_argument(
        "--workers", type=_positive, help="override server.workers (processes serving the port)"
    )
    serve.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # a supervisor's worker
    serve.add_argument("--control-fd", type=int, help=argparse.SUPPRESS)
    serve.set_defaults(func=cmd_serve)

    check = command("check", "validate the config")
    check.add_argument(
        "--online",
        action="store_true",
        help="also verify each channel's credentials and destination (sends no message)",
    )
    check.set_defaults(func=cmd_check)

    test = command("test", "send one marked test message through a channel (no store)")
    test.add_argument(
        "channel", help="a channel name from the config (an Apprise channel: each URL, or NAME#N)"
    )
    test.add_argument("event", nargs="?", help="an event JSON file (default: the TEST sample)")
    test.set_defaults(func=cmd_test)

    route = command("route-test", "dry run: routes, channels and rendered messages for an event")
    route.add_argument("event", help="an event JSON file")
    route.add_argument("--json", action="store_true", help="machine-readable output")
    route.set_defaults(func=cmd_route_test)

    sample = command("send-sample", "POST signed sample events to a relay")
    sample.add_argument("kind", nargs="?", default="all", help="a sample name, or 'all'")
    sample.set_defaults(func=cmd_send_sample)
    send = command("send", "POST one's own event (a JSON file) to a relay, signed")
    send.add_argument("event", help="an event JSON file")
    send.set_defaults(func=cmd_send)
    for p in (sample, send):
        p.add_argument("--url", help="webhook URL (default: the config's server address)")
        p.add_argument("--secret", help="signature (default: the config's first secret)")
        p.add_argument(
            "--fresh", action="store_true", help="a new run id per run, so nothing is a duplicate"
        )

    init = command("init", "write a commented starter relay.yaml (-c - prints it)")
    init.add_argument("--slack-webhook", metavar="URL", help="add a Slack incoming webhook")
    init.add_argument("--telegram-chat", metavar="ID", help="add a Telegram chat (token from env)")
    init.add_argument("--force", action="store_true", help="replace an existing file")
    init.set_defaults(func=cmd_init)

    dlq = command("dlq", "dead letters: list | replay ID | replay --all")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    dlq_list = dlq_sub.add_parser("list")
    dlq_list.add_argument("--limit", type=int, default=100)
    replay = dlq_sub.add_parser("replay")
    replay.add_argument("id", nargs="?")
    replay.add_argument("--all", action="store_true")
    for p in (dlq_list, replay):
        p.add_argument("-c", "--config", default=argparse.SUPPRESS)
    dlq.set_defaults(func=cmd_dlq)

    command("status", "jobs per channel and state").set_defaults(func=cmd_status)
    reconcile = command("reconcile", "ingest the run ends Mosaic's API knows and the relay missed")
    reconcile.add_argument("--once", action="store_true", help="one pass now (required)")
    reconcile.add_argument(
        "--dry-run", action="store_true", help="only print what it would recover; store nothing"
    )
    reconcile.set_defaults(func=cmd_reconcile)
    telegram = command("telegram", "Telegram bots: set-webhook (where button presses arrive)")
    telegram_sub = telegram.add_subparsers(dest="telegram_command", required=True)
    hook = telegram_sub.add_parser(
        "set-webhook", help="point each Telegram bot's webhook at actions.telegram.path"
    )
    hook.add_argument("--url", required=True, help="the relay's public address: https://HOST")
    hook.add_argument("--dry-run", action="store_true", help="only print what it would set")
    hook.add_argument("-c", "--config", default=argparse.SUPPRESS)
    telegram.set_defaults(func=cmd_telegram)
    command("schema", "print the JSON Schema of relay.yaml").set_defaults(func=cmd_schema)
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `relay schema | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
