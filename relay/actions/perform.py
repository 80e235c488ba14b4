"""Performs presses: grant, allow list, once, Mosaic's API, audit, the run's thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from aiohttp import web

from relay.actions import grants
from relay.actions.model import Grant, Press, Result
from relay.channels.base import Message, ThreadedChannel
from relay.mosaic.client import MosaicClient, MosaicError
from relay.mosaic.settings import MosaicSettings
from relay.render.kinds import kind_named
from relay.runtime import Runtime
from relay.store.base import ActionRecord, Store

__all__ = ["ACTIONS_KEY", "PERFORM_TIMEOUT", "Actions"]

log = logging.getLogger("relay.actions")

PERFORM_TIMEOUT = 90.0
"""Seconds a press may take at most, Mosaic's retries included."""
_VERBS = {"resume": "resume", "cancel": "cancel", "rerun": "re-run"}
_DONE = {"resume": "▶️ Resumed", "cancel": "🛑 Cancelled", "rerun": "🔁 Re-run started"}


class Actions:
    """Takes authenticated presses from the inbound endpoints (``accept``) and does the rest in
    the background: one task per press, awaited by ``stop``."""

    def __init__(
        self,
        store: Store,
        runtime: Callable[[], Runtime],
        client: Callable[[MosaicSettings], MosaicClient],
        *,
        clock: Callable[[], float] = time.time,
        on_result: Callable[[str, str], None] | None = None,
    ) -> None:
        self._store = store
        self._runtime = runtime
        self._client = client
        self._clock = clock
        self._on_result = on_result
        self._tasks: set[asyncio.Task[None]] = set()

    def accept(self, press: Press) -> None:
        """Handle ``press`` in a background task; returns at once (Slack wants an answer within
        3 s). Never raises: every outcome is answered to the presser and recorded."""
        task = asyncio.create_task(self._handle(press), name="relay-chat-action")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self, grace: float) -> None:
        """Let presses under way finish within ``grace``; cancel the rest."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    async def _handle(self, press: Press) -> None:
        try:
            async with asyncio.timeout(PERFORM_TIMEOUT):
                await self._press(press)
        except Exception:
            log.exception("handling a %s press failed", press.presser.source)

    async def _press(self, press: Press) -> None:
        runtime = self._runtime()
        settings = runtime.loaded.config.actions
        who = press.presser
        grant = await grants.find(self._store, press.value, now=self._clock())
        if grant is None:
            await self._record(None, press, "expired", "unknown or expired button")
            await press.surface.answer("This button has expired.")
            return
        verb = _VERBS[grant.action]
        if not settings.allows(grant.action, who.source, who.user_id):
            log.warning(
                "chat action refused: %s user %s may not %s run %s",
                who.source, who.user_id, verb, grant.run_id,
            )  # fmt: skip
            await self._record(grant, press, "refused", "not on actions.allow")
            await press.surface.answer(f"You are not allowed to {verb} runs.")
            return
        claimed = await self._store.claim_once(
            grants.claim_key(press.value), ttl=settings.button_ttl
        )
        if not claimed:
            await self._record(grant, press, "duplicate", "pressed before")
            await press.surface.answer("Already done: this button was pressed before.")
            return
        await press.surface.answer(f"{verb.capitalize()} of run {grant.run_id[:8]} under way…")
        result, detail = await self._call(runtime.loaded.config.mosaic, grant)
        await self._record(grant, press, result, detail)
        log.info(
            "chat action %s on run %s by %s user %s: %s",
            grant.action, grant.run_id, who.source, who.user_id, result,
        )  # fmt: skip
        await self._tell(runtime, grant, press, result, detail)
        if result == "done":
            with contextlib.suppress(Exception):
                await press.surface.remove_buttons()

    async def _call(self, mosaic: MosaicSettings, grant: Grant) -> tuple[Result, str]:
        """Do ``grant``'s action through Mosaic's API: ``(done|failed, detail)``."""
        if not mosaic.api_enabled:
            return "failed", "the Mosaic API is off (mosaic.api_key)"
        client = self._client(mosaic)
        try:
            if grant.action == "resume":
                await client.resume_run(grant.run_id)
                return "done", ""
            if grant.action == "cancel":
                await client.cancel_run(grant.run_id)
                return "done", ""
            started = await client.start_run(grant.agent_id, video_urls=list(grant.video_urls))
            return "done", f"new run {started}" if started else ""
        except MosaicError as exc:
            return "failed", exc.reason
        except ValueError as exc:  # a grant with no inputs to re-run (never issued so)
            return "failed", str(exc)
        finally:
            await client.close()

    async def _record(self, grant: Grant | None, press: Press, result: Result, detail: str) -> None:
        record = ActionRecord(
            at=self._clock(),
            action=grant.action if grant is not None else "",
            run_id=grant.run_id if grant is not None else "",
            source=press.presser.source,
            user_id=press.presser.user_id,
            user_name=press.presser.name,
            result=result,
            detail=detail,
            route=grant.route if grant is not None else "",
            channel=grant.channel if grant is not None else "",
        )
        if self._on_result is not None:
            self._on_result(record.action or "unknown", result)
        try:
            await self._store.record_action(record)
        except Exception:
            log.exception("recording a chat action failed")

    async def _tell(
        self, runtime: Runtime, grant: Grant, press: Press, result: Result, detail: str
    ) -> None:
        """Say what came of the press in the pressed message's thread, in its channel's markup."""
        channel = runtime.channels.get(grant.channel)
        if press.message is None or not isinstance(channel, ThreadedChannel):
            return
        escape = kind_named(channel.render_kind).text_markup.literal
        name = press.presser.name or press.presser.user_id
        by = (
            f"<@{press.presser.user_id}>" if press.presser.source == "slack" else escape(f"@{name}")
        )
        if result == "done":
            text = f"{_DONE[grant.action]} by {by}" + (f" ({escape(detail)})" if detail else "")
        else:
            text = f"⚠️ {_VERBS[grant.action].capitalize()} by {by} failed: {escape(detail)}"
        message = Message(text=text, run_id=grant.run_id, route=grant.route)
        try:
            await channel.reply(press.message, message)
        except Exception as exc:
            log.warning("telling the thread of %s failed: %s", grant.channel, type(exc).__name__)


ACTIONS_KEY = web.AppKey("actions", Actions)
"""The relay's ``Actions``, for the inbound endpoints (``request.app[ACTIONS_KEY]``)."""
