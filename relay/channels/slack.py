"""Slack channel: Web API (``chat.postMessage``, ``chat.update``, threads) or an incoming webhook.

The message arrives as escaped mrkdwn plus optional Block Kit blocks; the plain ``text`` is always
sent too (notification fallback). ``parse="full"`` and ``link_names`` are never used, so event text
cannot ping ``@channel``. Retries are the dispatcher's (durable): the SDK's own are switched off.
Chat-action buttons are drawn in token mode only: an incoming webhook's messages cannot send
presses back.
"""

from __future__ import annotations

import asyncio
import logging
import re
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient

from relay.channels.base import (
    DeliveryError,
    Limits,
    Message,
    MessageRef,
    PermanentError,
    RetryableError,
    VerifyError,
    classify_http_status,
    network_error,
    parse_retry_after,
)
from relay.channels.reach import reach
from relay.channels.scrub import SDK_LOGGER, fingerprint, hide_in_logs, scrub
from relay.channels.slack_buttons import with_buttons
from relay.channels.slack_settings import SlackSettings
from relay.confmodel import RateLimit

__all__ = ["SlackChannel", "SlackSettings", "classify_slack_failure"]

_T = TypeVar("_T")

_RATE_LIMITED = frozenset({"ratelimited", "rate_limited"})
_RETRYABLE = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout"})
_PERMANENT = frozenset(
    {
        "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
        "missing_scope", "channel_not_found", "not_in_channel", "is_archived", "msg_too_long",
        "invalid_blocks", "no_text", "restricted_action", "message_not_found",
        "cant_update_message", "edit_window_closed", "invalid_token", "no_service", "no_team",
        "team_disabled", "channel_is_archived", "action_prohibited", "invalid_payload",
        "posting_to_general_channel_denied", "too_many_attachments",
    }
)  # fmt: skip
_CODE = re.compile(r"^[a-z0-9_.]{1,64}$")
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
_LIST_PAGES = 20
"""``conversations.list`` pages (of 1,000) read to find a channel given by name."""


def classify_slack_failure(status: int, code: str, retry_after: str | None) -> DeliveryError:
    """The Slack retry decision from an HTTP status and Slack's ``error`` code ('' if none).

    An ``ok: false`` answer with an unknown code is permanent, with the code in the reason.
    """
    code = code if _CODE.match(code) else ""
    label = f"Slack error '{code}'" if code else "Slack error"
    if code in _RATE_LIMITED or status == 429:
        return RetryableError(
            f"{label}: rate limited (HTTP {status})",
            retry_after=parse_retry_after(retry_after),
            rate_limited=True,
        )
    if code in _RETRYABLE:
        return RetryableError(
            f"{label} (HTTP {status})", retry_after=parse_retry_after(retry_after)
        )
    if code in _PERMANENT:
        return PermanentError(f"{label} (HTTP {status})")
    decided = classify_http_status(status, retry_after=retry_after, detail=label)
    return decided or PermanentError(f"{label} (HTTP {status})")


def _header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == name.lower():
            return str(value)
    return None


def _without_env_proxy(client: AsyncWebClient | AsyncWebhookClient, url: str) -> None:
    """slack-sdk applies HTTP(S)_PROXY but ignores NO_PROXY; honour NO_PROXY too."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if client.proxy and urllib.request.proxy_bypass(host):
        client.proxy = None


class SlackChannel:
    render_kind: ClassVar[str] = "slack"
    limits: ClassVar[Limits] = Limits(text=40_000, section=3000, header=150, blocks=50)
    default_rate_limit: ClassVar[RateLimit | None] = RateLimit(per_second=1.0, burst=3)

    def __init__(self, name: str, settings: SlackSettings, base_dir: Path) -> None:
        self.name = name
        self.settings = settings
        self._token = settings.token.get_secret_value().strip() if settings.token else None
        self._hook_url = settings.webhook_url.get_secret_value() if settings.webhook_url else None
        self._secrets = (self._token, self._hook_url, _path_of(self._hook_url))
        hide_in_logs(*self._secrets)
        self._web: AsyncWebClient | None = None
        self._hook: AsyncWebhookClient | None = None

    def __repr__(self) -> str:
        mode = "token" if self._token else "webhook"
        return f"SlackChannel(name={self.name!r}, mode={mode!r}, channel={self.settings.channel!r})"

    @property
    def rate_key(self) -> str:
        if self._token:
            return f"slack:{fingerprint(self._token)}:{self.settings.channel}"
        return f"slack-webhook:{fingerprint(self._hook_url or '')}"

    @property
    def can_edit(self) -> bool:
        """Edits and threads need the Web API (token mode)."""
        return self._token is not None

    async def start(self, session: aiohttp.ClientSession) -> None:
        logger = logging.getLogger(SDK_LOGGER)
        if self._token:
            self._web = AsyncWebClient(
                token=self._token,
                base_url=self.settings.api_url,
                session=session,
                logger=logger,
                retry_handlers=[],
            )
            _without_env_proxy(self._web, self.settings.api_url)
        elif self._hook_url:
            self._hook = AsyncWebhookClient(
                self._hook_url, session=session, logger=logger, retry_handlers=[]
            )
            _without_env_proxy(self._hook, self._hook_url)

    async def close(self) -> None:
        self._web = self._hook = None

    async def send(self, message: Message) -> MessageRef | None:
        if self._token:
            assert self.settings.channel is not None
            return await self._post(message, channel=self.settings.channel)
        await self._post_webhook(message)
        return None

    async def edit(self, ref: MessageRef, message: Message) -> None:
        """Replace a posted message (``chat.update``); token mode only."""
        web = self._web_client("edit messages")
        await self._call(
            web.chat_update(
                channel=ref.channel_id,
                ts=ref.message_id,
                text=message.text,
                blocks=_blocks(message),
            )
        )

    async def reply(
        self, ref: MessageRef, message: Message, *, broadcast: bool = False
    ) -> MessageRef | None:
        """Post in the thread under ``ref``; ``broadcast`` also shows it in the channel.

        An incoming webhook has no threads: the reply is posted as a plain message.
        """
        if not self._token:
            await self._post_webhook(message)
            return None
        return await self._post(
            message, channel=ref.channel_id, thread_ts=ref.message_id, reply_broadcast=broadcast
        )

    async def verify(self) -> str:
        """Token mode: ``auth.test``, then that the bot may post in the channel (it is a member,
        or holds ``chat:write.public``). Webhook mode: the URL's shape and that its host answers
        (a request would post)."""
        if not self._token:
            return await self._verify_webhook()
        web = self._web_client("verify")
        try:
            identity = await self._call(web.auth_test())
            scopes = _scopes(identity)
            if scopes is not None and "chat:write" not in scopes:
                raise VerifyError("the token lacks the chat:write scope ('missing_scope')")
            found = await self._call(self._find_channel(web))
        except DeliveryError as exc:
            raise VerifyError(exc.reason) from None
        bot = f"bot {identity.get('user') or '?'}"
        if found is None:
            return f"{bot}; the channel is not checked: that needs the channels:read scope"
        label = f"#{found.get('name') or self.settings.channel}"
        if found.get("is_archived"):
            raise VerifyError(f"Slack channel {label} is archived ('is_archived')")
        if not found.get("is_member") and "chat:write.public" not in (scopes or ()):
            raise VerifyError(
                f"the {bot} is not in Slack channel {label} ('not_in_channel'): invite it there"
            )
        return f"{bot}, may post in {label}"

    async def _find_channel(self, web: AsyncWebClient) -> dict[str, Any] | None:
        """The configured channel as Slack describes it; None when the token may not read it."""
        wanted = self.settings.channel or ""
        try:
            if _CHANNEL_ID.match(wanted):
                answer = await web.conversations_info(channel=wanted)
                return dict(answer.get("channel") or {})
            return await self._channel_named(web, wanted.lstrip("#"))
        except SlackApiError as exc:
            data = getattr(exc.response, "data", None)
            if isinstance(data, dict) and data.get("error") == "missing_scope":
                return None
            raise

    async def _channel_named(self, web: AsyncWebClient, name: str) -> dict[str, Any]:
        cursor = None
        for _ in range(_LIST_PAGES):
            page = await web.conversations_list(
                types="public_channel,private_channel",
                exclude_archived=True,
                limit=1000,
                cursor=cursor,
            )
            for channel in page.get("channels") or []:
                if isinstance(channel, dict) and channel.get("name") == name:
                    return channel
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        raise VerifyError(
            f"no Slack channel #{name} the bot can see ('channel_not_found'); "
            "a private channel shows only once the bot is invited"
        )

    async def _verify_webhook(self) -> str:
        url = self._hook_url or ""
        segments = urllib.parse.urlsplit(url).path.split("/")
        if len(segments) != 5 or segments[1] != "services" or not all(segments[2:]):
            raise VerifyError(
                "webhook_url is not a Slack incoming-webhook URL "
                "(https://hooks.slack.com/services/T…/B…/…)"
            )
        return await reach(url, within=self.settings.timeout)

    async def _post(self, message: Message, *, channel: str, **extra: Any) -> MessageRef:
        web = self._web_client("post")
        answer = await self._call(
            web.chat_postMessage(
                channel=channel,
                text=message.text,
                blocks=_blocks(message),
                unfurl_links=False,
                **extra,
            )
        )
        ts = answer.get("ts")
        if not ts:
            raise PermanentError("Slack accepted the message but answered without its 'ts'")
        return MessageRef(channel_id=str(answer.get("channel") or channel), message_id=str(ts))

    async def _post_webhook(self, message: Message) -> None:
        if self._hook is None:
            raise RuntimeError(f"channel {self.name!r} is not started")
        response = await self._call(
            self._hook.send(text=message.text, blocks=message.blocks, unfurl_links=False)
        )
        if response.status_code == 200 and response.body == "ok":
            return
        raise classify_slack_failure(
            response.status_code,
            (response.body or "").strip(),
            _header(response.headers, "Retry-After"),
        )

    def _web_client(self, action: str) -> AsyncWebClient:
        if not self._token:
            raise PermanentError(f"a Slack incoming webhook cannot {action}: configure a token")
        if self._web is None:
            raise RuntimeError(f"channel {self.name!r} is not started")
        return self._web

    async def _call(self, call: Awaitable[_T]) -> _T:
        try:
            async with asyncio.timeout(self.settings.timeout):
                return await call
        except SlackApiError as exc:
            data = getattr(exc.response, "data", None)
            code = data.get("error") if isinstance(data, dict) else None
            raise classify_slack_failure(
                int(getattr(exc.response, "status_code", 0) or 0),
                str(code or ""),
                _header(getattr(exc.response, "headers", None), "Retry-After"),
            ) from None
        except Exception as exc:
            retryable = network_error(exc, "Slack")
            if retryable is not None:
                raise retryable from None
            if isinstance(exc, SlackClientError):
                reason = scrub(f"Slack client error ({type(exc).__name__}): {exc}", self._secrets)
                raise PermanentError(reason) from None
            raise


def _blocks(message: Message) -> list[dict[str, Any]] | None:
    """The message's blocks with its buttons (Web API only: an incoming webhook's message
    cannot send presses back, so it never shows buttons)."""
    return with_buttons(message.text, message.blocks, message.buttons)


def _scopes(answer: AsyncSlackResponse) -> set[str] | None:
    """The token's scopes from Slack's ``X-OAuth-Scopes`` header; None when it is absent."""
    value = _header(answer.headers, "X-OAuth-Scopes")
    if value is None:
        return None
    return {scope.strip() for scope in value.split(",") if scope.strip()}


def _path_of(url: str | None) -> str | None:
    """The secret part of an incoming-webhook URL (its path), masked on its own too."""
    if not url:
        return None
    path = urllib.parse.urlsplit(url).path
    return path if len(path.strip("/")) >= 8 else None
