"""Dry runs: which routes and channels an event reaches and each rendered message, sending
nothing (``relay route-test``, the web UI's route tester), and the bundled sample events."""

from __future__ import annotations

import time
from datetime import datetime
from importlib import resources
from typing import Any

from pydantic import ValidationError

from relay.digest.entries import Digest, Entry, entry_of
from relay.digest.groups import QUIET_ROUTE
from relay.digest.settings import zone
from relay.events import Event, describe_error
from relay.receiver import BadPayload, parse_json
from relay.render import RenderError
from relay.routing import Delivery
from relay.runtime import Runtime

__all__ = ["DryRunError", "parse_event", "route_test", "sample_bytes", "sample_names"]


class DryRunError(ValueError):
    """The input is not a Mosaic event; the text says why in one line."""


def parse_event(raw: bytes) -> Event:
    """The Mosaic event in ``raw``; ``DryRunError`` says in one line why it is not one."""
    try:
        return Event.model_validate(parse_json(raw))
    except BadPayload as exc:
        raise DryRunError(f"not valid JSON: {exc}") from None
    except ValidationError as exc:
        raise DryRunError(f"not a Mosaic event: {describe_error(exc)}") from None


def route_test(runtime: Runtime, raw: bytes) -> dict[str, Any]:
    """Which routes and channels an event reaches, and each rendered message; sends nothing."""
    event = parse_event(raw)
    deliveries = []
    now = time.time()
    for delivery in runtime.router.match(event, now):
        channel = runtime.channels[delivery.channel]
        entry: dict[str, Any] = {
            "route": delivery.route.name,
            "channel": delivery.channel,
            "type": getattr(getattr(channel, "settings", None), "type", "?"),
            "template": delivery.template,
            "mode": delivery.route.mode,
        }
        digest = _held(runtime, delivery, event, now)
        try:
            if digest is None:
                message = runtime.render(
                    delivery.channel,
                    delivery.template,
                    event,
                    event_id="(dry-run)",
                    route=delivery.route.name,
                    run_started_at=now,
                    now=now,
                )
            else:
                entry["held"] = {"kind": digest.kind, "until": digest.end, "at": _local(digest)}
                message = runtime.render_digest(
                    delivery.channel, delivery.template, digest, event_id="(dry-run)"
                )
        except RenderError as exc:
            entry["error"] = str(exc)
        else:
            entry.update(text=message.text, subject=message.subject)
            if message.blocks is not None:
                entry["blocks"] = message.blocks
            if message.html is not None:
                entry["html"] = message.html
        deliveries.append(entry)
    return {
        "event": {"flag": event.flag, "status": event.status, "run_id": event.run_id},
        "deliveries": deliveries,
    }


def _held(runtime: Runtime, delivery: Delivery, event: Event, now: float) -> Digest | None:
    """The message a held delivery waits for, holding only this event; None when sent now."""
    if delivery.hold is None:
        return None
    entry = Entry.model_validate_json(entry_of(event, now))
    schedule = delivery.route.digest
    if schedule is not None:
        start, end = schedule.last_fire(now), schedule.next_fire(now)
        return Digest(
            kind="digest",
            route=delivery.route.name,
            channel=delivery.channel,
            start=start,
            end=end,
            timezone=schedule.settings.timezone,
            entries=[entry],
        )
    rule = runtime.router.quiet[delivery.channel]
    return Digest(
        kind="quiet",
        route=QUIET_ROUTE,
        channel=delivery.channel,
        start=None,
        end=rule.hours.period_end(now) or now,
        timezone=rule.hours.settings.timezone,
        entries=[entry],
    )


def _local(digest: Digest) -> str:
    """When the held message goes out, on the config's clock."""
    return datetime.fromtimestamp(digest.end, zone(digest.timezone)).strftime("%a %d %b %H:%M %Z")


def sample_names() -> list[str]:
    folder = resources.files("relay") / "samples"
    return sorted(
        p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json")
    )


def sample_bytes(name: str) -> bytes:
    return (resources.files("relay") / "samples" / f"{name}.json").read_bytes()
