"""File channel: appends one JSON object per delivered message to a JSON-lines file."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import ClassVar, Literal

import aiohttp

from relay.channels.base import (
    ChannelSettings,
    Limits,
    Message,
    MessageRef,
    RetryableError,
    VerifyError,
)
from relay.confmodel import RateLimit

__all__ = ["FileChannel", "FileSettings"]


class FileSettings(ChannelSettings):
    type: Literal["file"]
    path: str = "deliveries.jsonl"
    fsync: bool = False


class FileChannel:
    render_kind: ClassVar[str] = "plain"
    limits: ClassVar[Limits] = Limits(text=100_000)
    default_rate_limit: ClassVar[RateLimit | None] = None

    def __init__(self, name: str, settings: FileSettings, base_dir: Path) -> None:
        self.name = name
        self.settings = settings
        path = Path(settings.path).expanduser()
        self.path = path if path.is_absolute() else base_dir / path
        self._lock = asyncio.Lock()

    @property
    def rate_key(self) -> str:
        return f"file:{self.path}"

    async def start(self, session: aiohttp.ClientSession) -> None:
        return None

    async def close(self) -> None:
        return None

    async def verify(self) -> str:
        """The file can be appended to: it is a writable file, or its folder lets us create it."""
        await asyncio.to_thread(self._check_writable)
        return f"{self.path.name} is writable"

    def _check_writable(self) -> None:
        if self.path.exists():
            if not self.path.is_file():
                raise VerifyError(f"{self.path.name} is not a regular file")
            if not os.access(self.path, os.W_OK):
                raise VerifyError(f"{self.path.name} is not writable")
            return
        folder = self.path.parent
        while not folder.exists():
            folder = folder.parent
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            raise VerifyError(f"cannot create {self.path.name}: its folder is not writable")

    def line_for(self, message: Message) -> str:
        record = {
            "ts": time.time(),
            "channel": self.name,
            "route": message.route,
            "event_id": message.event_id,
            "run_id": message.run_id,
            "agent_id": message.agent_id,
            "flag": message.flag,
            "status": message.status,
            "text": message.text,
        }
        if message.subject:
            record["subject"] = message.subject
        if message.image_url:
            record["image_url"] = message.image_url
        return json.dumps(record, ensure_ascii=False) + "\n"

    async def send(self, message: Message) -> MessageRef | None:
        line = self.line_for(message)
        async with self._lock:
            try:
                await asyncio.to_thread(self._append, line)
            except OSError as exc:
                raise RetryableError(f"cannot write {self.path.name}: {exc.strerror}") from None
        return None

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            if self.settings.fsync:
                os.fsync(handle.fileno())
