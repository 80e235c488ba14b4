"""Everything built from one loaded config: router, renderer, channels. Swapped whole on reload."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp

from relay.channels import Channel, ChannelSettings, Limits, Message, build_channel
from relay.config import LoadedConfig, ServerSettings
from relay.confmodel import RateLimit
from relay.digest.entries import Digest
from relay.digest.settings import DigestSettings
from relay.events import Event
from relay.render import Renderer
from relay.routing import Router

__all__ = ["Runtime", "effective_rate_limit"]

log = logging.getLogger("relay.runtime")

DEFAULT_MAX_RUNS = DigestSettings.model_fields["max_runs"].default
"""Runs a quiet-hours message lists at most."""


def effective_rate_limit(channel: Channel) -> RateLimit | None:
    configured = getattr(getattr(channel, "settings", None), "rate_limit", None)
    if configured == "off":
        return None
    if isinstance(configured, RateLimit):
        return configured
    return channel.default_rate_limit


@dataclass
class Runtime:
    loaded: LoadedConfig
    router: Router
    renderer: Renderer
    channels: dict[str, Channel]
    secrets: tuple[bytes, ...]
    rate_limits: dict[str, RateLimit | None] = field(default_factory=dict)
    api_names: Mapping[str, str] | None = None
    """Agents' names in Mosaic (None: not used); ``agents:`` wins."""
    origins: dict[str, str] = field(default_factory=dict)
    """Destination (a job's channel) -> the configured channel it belongs to."""

    @property
    def server(self) -> ServerSettings:
        return self.loaded.config.server

    @property
    def allow_unsigned(self) -> bool:
        return self.loaded.config.auth.allow_unsigned

    @classmethod
    def build(cls, loaded: LoadedConfig, api_names: Mapping[str, str] | None = None) -> Runtime:
        """``api_names``: agents' names in Mosaic, read at each match and render (an in-memory
        mapping, ``relay.mosaic.names.AgentNames``); used when ``mosaic.agent_names`` is on and
        ``mosaic.api_key`` set. ``agents:`` in relay.yaml wins."""
        config = loaded.config
        mosaic = config.mosaic
        if not (mosaic.api_enabled and mosaic.agent_names):
            api_names = None
        origins: dict[str, str] = {}
        channels: dict[str, Channel] = {}
        for name, configured in config.channels.items():
            for destination, settings in configured.destinations(name):
                if destination in origins or (
                    destination != name and destination in config.channels
                ):
                    raise ValueError(
                        f"channel '{name}' delivers to '{destination}', which is another "
                        "channel's name: rename one of them"
                    )
                origins[destination] = name
                channels[destination] = build_channel(destination, settings, loaded.base_dir)
        return cls(
            loaded=loaded,
            router=Router.from_config(config, api_names),
            renderer=Renderer(
                config.templates, config.agents, api_names=api_names, run_url=mosaic.run_url
            ),
            channels=channels,
            secrets=tuple(s.get_secret_value().encode("utf-8") for s in config.auth.secrets),
            rate_limits={name: effective_rate_limit(ch) for name, ch in channels.items()},
            api_names=api_names,
            origins=origins,
        )

    def settings_of(self, destination: str) -> ChannelSettings | None:
        """The configured settings (``channels:`` in relay.yaml) of the channel that delivers
        to ``destination`` (a job's channel: ``team-ntfy#2`` is ``team-ntfy``'s); None if gone."""
        return self.loaded.config.channels.get(self.origins.get(destination, destination))

    def destinations_of(self, name: str) -> list[str]:
        """The destinations of channel ``name`` (``team-ntfy`` -> ``team-ntfy#1``, …), or
        ``[name]`` when ``name`` is a destination itself; empty when unknown."""
        if name in self.channels and self.origins.get(name, name) != name:
            return [name]
        return [dest for dest, origin in self.origins.items() if origin == name]

    def render(
        self,
        channel: str,
        template: str | None,
        event: Event,
        *,
        event_id: str,
        route: str,
        run_started_at: float | None,
        now: float,
        limits: Limits | None = None,
    ) -> Message:
        """The message for ``channel`` (its kind, limits and own templates, such as a webhook's
        body); ``limits`` replaces the channel's (tighter, to leave room for a marker)."""
        target = self.channels[channel]
        settings = self.settings_of(channel)
        return self.renderer.render(
            target.render_kind,
            template,
            event,
            event_id=event_id,
            route=route,
            channel=channel,
            limits=limits or target.limits,
            run_started_at=run_started_at,
            now=now,
            channel_templates=settings.templates() if settings is not None else None,
        )

    def render_digest(
        self, channel: str, template: str | None, digest: Digest, *, event_id: str
    ) -> Message:
        """The message of a flushed window for ``channel``; a digest route's ``max_runs``
        bounds the runs it lists."""
        target = self.channels[channel]
        settings = self.settings_of(channel)
        route = self.router.route_named(digest.route)
        schedule = route.digest if route is not None else None
        return self.renderer.render_digest(
            target.render_kind,
            template,
            digest,
            event_id=event_id,
            channel=channel,
            limits=target.limits,
            max_runs=schedule.settings.max_runs if schedule is not None else DEFAULT_MAX_RUNS,
            channel_templates=settings.templates() if settings is not None else None,
        )

    async def start(self, session: aiohttp.ClientSession) -> None:
        for channel in self.channels.values():
            await channel.start(session)

    async def close(self) -> None:
        for name, channel in self.channels.items():
            try:
                await channel.close()
            except Exception:
                log.exception("closing channel %s failed", name)
