"""Which buttons a message gets: the route's actions that fit the run now, on a channel where
presses can arrive."""

from __future__ import annotations

from relay.actions import grants
from relay.actions.model import ACTIONS, Button, Grant
from relay.events import Event
from relay.runtime import Runtime
from relay.store.base import Job, Store

__all__ = ["buttons_for", "fitting"]

_RESUMABLE = frozenset({"failed", "partial_complete"})


def fitting(action: str, event: Event) -> bool:
    """Cancel while the run runs; Resume after a failed or partial end; Re-run after any end
    when the run's inputs are known."""
    if event.flag in ("TEST", "DIGEST"):
        return False
    if action == "cancel":
        return not event.is_terminal
    if action == "resume":
        return event.is_terminal and event.status in _RESUMABLE
    if action == "rerun":
        return event.is_terminal and any(i.video_url for i in event.inputs)
    return False


def _presses_arrive(runtime: Runtime, channel: str) -> bool:
    """Whether presses on ``channel``'s messages reach the relay: its platform's endpoint is
    configured, the API key is set, and the channel can carry buttons (Slack's incoming
    webhooks cannot)."""
    config = runtime.loaded.config
    settings = runtime.settings_of(channel)
    if settings is None or not config.mosaic.api_enabled:
        return False
    if settings.type == "slack":
        return config.actions.slack is not None and getattr(settings, "webhook_url", None) is None
    if settings.type == "telegram":
        return config.actions.telegram is not None
    return False


async def buttons_for(
    store: Store, runtime: Runtime, job: Job, event: Event, now: float
) -> tuple[Button, ...]:
    """The buttons of ``job``'s message, each naming a fresh grant; none when its route offers
    no action, the channel cannot take presses, or nothing fits the run now. An action already
    done on the run is not offered again."""
    route = runtime.router.route_named(job.route)
    if route is None or not route.actions or not _presses_arrive(runtime, job.channel):
        return ()
    wanted = [a for a in ACTIONS if a in route.actions and fitting(a, event)]
    if not wanted:
        return ()
    done = {r.action for r in await store.list_actions(run_id=event.run_id) if r.result == "done"}
    ttl = runtime.loaded.config.actions.button_ttl
    video_urls = tuple(i.video_url for i in event.inputs if i.video_url)
    buttons = []
    for action in wanted:
        if action in done:
            continue
        grant = Grant(
            action=action,
            run_id=event.run_id,
            agent_id=event.agent_id,
            route=job.route,
            channel=job.channel,
            event_id=job.event_id,
            video_urls=video_urls if action == "rerun" else (),
            expires_at=now + ttl,
        )
        buttons.append(await grants.issue(store, grant))
    return tuple(buttons)
