"""Console channel: a readable block per message on stdout (logs go to stderr)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import ClassVar, Literal, TextIO

import aiohttp

from relay.channels.base import ChannelSettings, Limits, Message, MessageRef
from relay.confmodel import RateLimit

__all__ = ["ConsoleChannel", "ConsoleSettings"]


class ConsoleSettings(ChannelSettings):
    type: Literal["console"]


class ConsoleChannel:
    render_kind: ClassVar[str] = "plain"
    limits: ClassVar[Limits] = Limits(text=40_000)
    default_rate_limit: ClassVar[RateLimit | None] = None

    def __init__(
        self, name: str, settings: ConsoleSettings, base_dir: Path, stream: TextIO | None = None
    ) -> None:
        self.name = name
        self.settings = settings
        self._stream = stream

    @property
    def rate_key(self) -> str:
        return f"console:{self.name}"

    async def start(self, session: aiohttp.ClientSession) -> None:
        return None

    async def close(self) -> None:
        return None

    async def verify(self) -> str:
        """Nothing can fail before a write to stdout."""
        return "nothing to check"

    async def send(self, message: Message) -> MessageRef | None:
        stream = self._stream or sys.stdout
        rule = "─" * 60
        heading = f"── {self.name} · {message.route} · event {message.event_id} "
        stream.write(f"{heading}{rule[len(heading) :]}\n{message.text}\n{rule}\n")
        stream.flush()
        return None
