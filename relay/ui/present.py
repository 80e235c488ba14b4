"""Store records and the running config as plain JSON-able dicts, for the API and the pages.

Nothing secret leaves here: channel settings go through pydantic's JSON dump (``SecretStr`` ->
``**********``) and URLs lose their credentials.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from relay.confmodel import route_label
from relay.render.context import display_name
from relay.runtime import Runtime
from relay.store.base import (
    DELIVERY_STATES,
    EventRecord,
    Job,
    JobRecord,
    Store,
    StoreInspector,
)
from relay.ui.state import UiState

__all__ = [
    "MASK",
    "agent_names",
    "config_json",
    "counts_json",
    "dead_letter_json",
    "delivery_json",
    "event_detail_json",
    "event_json",
    "mask_url",
    "resolve_agent",
]

MASK = "**********"
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def agent_name(runtime: Runtime, agent_id: str) -> str:
    """Its name in ``agents:``, else in Mosaic (when resolved), else the id."""
    return display_name(agent_id, runtime.loaded.config.agents, runtime.api_names) or agent_id


def agent_names(runtime: Runtime) -> list[str]:
    """Every agent name the relay knows (``agents:``, then Mosaic's), sorted."""
    agents = runtime.loaded.config.agents
    found = set(agents.values())
    if runtime.api_names is not None:
        found.update(name for agent_id, name in runtime.api_names.items() if agent_id not in agents)
    return sorted(found)


def resolve_agent(runtime: Runtime, text: str) -> str:
    """An agent id from an id, a display name of ``agents:`` or a name in Mosaic (first id with
    that name)."""
    agents = runtime.loaded.config.agents
    if text in agents:
        return text
    found = next((agent_id for agent_id, name in agents.items() if name == text), None)
    if found is None and runtime.api_names is not None:
        named = runtime.api_names.items()
        found = next((agent_id for agent_id, name in named if name == text), None)
    return found or text


def delivery_json(job: JobRecord, *, with_log: bool = False) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "job_id": job.id,
        "channel": job.channel,
        "route": job.route,
        "template": job.template,
        "mode": job.mode,
        "state": job.state,
        "delivery": job.delivery,
        "attempts": job.attempts,
        "created_at": job.created_at,
        "next_attempt_at": job.next_attempt_at,
        "finished_at": job.finished_at,
        "last_error": job.last_error,
    }
    if with_log:
        entry["log"] = [
            {"at": a.at, "outcome": a.outcome, "error": a.error, "rendered": a.rendered}
            for a in job.log
        ]
    return entry


def event_json(runtime: Runtime, record: EventRecord) -> dict[str, Any]:
    return {
        "event_id": record.event_id,
        "cursor": record.cursor,
        "received_at": record.received_at,
        "flag": record.flag,
        "status": record.status,
        "agent_id": record.agent_id,
        "agent_name": agent_name(runtime, record.agent_id),
        "run_id": record.run_id,
        "trigger": record.trigger,
        "title": record.title,
        "deliveries": [delivery_json(job) for job in record.jobs],
    }


def event_detail_json(runtime: Runtime, record: EventRecord) -> dict[str, Any]:
    detail = event_json(runtime, record)
    detail["payload"] = _parsed(record.body)
    detail["routes"] = list(dict.fromkeys(job.route for job in record.jobs))
    detail["deliveries"] = [delivery_json(job, with_log=True) for job in record.jobs]
    return detail


def _parsed(body: bytes | None) -> Any:
    """The payload as JSON; as text if it is not JSON (never the case for accepted events)."""
    if body is None:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


def _payload_fields(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def dead_letter_json(runtime: Runtime, job: Job, now: float) -> dict[str, Any]:
    payload = _payload_fields(job.body)
    trigger = payload.get("triggered_by")
    title = trigger.get("video_title") if isinstance(trigger, dict) else None
    return {
        "job_id": job.id,
        "event_id": job.event_id,
        "run_id": job.run_id,
        "channel": job.channel,
        "route": job.route,
        "flag": payload.get("flag"),
        "status": payload.get("status"),
        "agent_name": agent_name(runtime, str(payload.get("agent_id", ""))),
        "title": title if isinstance(title, str) else None,
        "attempts": job.attempts,
        "reason": job.last_error,
        "created_at": job.created_at,
        "age_seconds": max(0.0, now - job.created_at),
    }


async def counts_json(store: Store) -> dict[str, int | None]:
    """Live counts; without an inspecting store, what ``status()`` tells (no ``received``, and
    ``retrying`` folded into ``pending``)."""
    if isinstance(store, StoreInspector):
        counts = await store.counts()
        return {"received": counts.received, **{s: getattr(counts, s) for s in DELIVERY_STATES}}
    totals: dict[str, int | None] = {"received": None, "sent": 0, "pending": 0, "dead": 0}
    for row in await store.status():
        key = "pending" if row.state == "inflight" else row.state
        totals[key] = (totals.get(key) or 0) + row.count
    totals["retrying"] = None
    return totals


def mask_url(value: str) -> str:
    """``scheme://user:password@host/…`` without the password (and user)."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return MASK
    if parts.username is None and parts.password is None:
        return value
    host = parts.hostname or ""
    netloc = f"{MASK}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item) for item in value]
    if isinstance(value, str) and _URL.match(value):
        return mask_url(value)
    return value


def reconcile_json(state: UiState) -> dict[str, Any]:
    """``{"state": "off"}``, or its settings and the last pass (``ago`` in seconds)."""
    mosaic = state.live.current.loaded.config.mosaic
    if not mosaic.api_enabled or mosaic.reconcile == "off":
        return {"state": "off"}
    last = state.last_reconcile()
    last_pass = None
    if last is not None:
        last_pass = {
            "at": last.at,
            "ago": max(0.0, time.time() - last.at),
            "result": last.result,
            "listed": last.listed,
            "recovered": len(last.recovered),
            "api_calls": last.api_calls,
            "error": last.error,
        }
    settings = mosaic.reconcile
    return {
        "state": "on",
        "interval": settings.interval,
        "lookback": settings.lookback,
        "last_pass": last_pass,
    }


def config_json(state: UiState) -> dict[str, Any]:
    loaded = state.live.current.loaded
    config = loaded.config
    loaded_at = state.registry.get_sample_value("relay_config_loaded_timestamp_seconds")
    return {
        "path": str(loaded.path),
        "sha256": loaded.sha256,
        "loaded_at": loaded_at or None,
        "last_reload": _masked(dict(state.live.last_reload)),
        "channel_checks": state.checks.as_json() if state.checks is not None else None,
        "rejected_webhooks": [r.as_dict() for r in state.rejections.recent()],
        "reconcile": reconcile_json(state),
        "store": mask_url(config.store.url),
        "unset_vars": list(loaded.unset_vars),
        "agents": dict(config.agents),
        "channels": {
            name: _masked(settings.model_dump(mode="json", by_alias=True, exclude_none=True))
            for name, settings in config.channels.items()
        },
        "routes": [
            {
                "name": route_label(route.name, index),
                **_masked(
                    route.model_dump(
                        mode="json", by_alias=True, exclude_none=True, exclude={"name"}
                    )
                ),
            }
            for index, route in enumerate(config.routes)
        ],
    }
