"""``relay telegram set-webhook``: point each Telegram bot of the config at the relay.

One ``setWebhook`` per bot (channels sharing a token and API URL are one bot), to
``<url><actions.telegram.path>?bot=<channel>`` with ``secret_token`` and only callback queries:
the endpoint then knows which bot to answer with. Nothing printed carries a token or the secret.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

import aiohttp

from relay.channels.base import DeliveryError
from relay.channels.telegram_settings import TelegramSettings
from relay.config import LoadedConfig

__all__ = ["ALLOWED_UPDATES", "BotHook", "WebhookError", "bot_hooks", "set_webhooks"]

ALLOWED_UPDATES = ["callback_query"]


class WebhookError(Exception):
    """The config or the URL does not allow a webhook (a one-line message for the user)."""


@dataclass(frozen=True, slots=True)
class BotHook:
    """One bot's webhook: the channel that names it (and the others on the same bot)."""

    channel: str
    settings: TelegramSettings
    url: str
    same_bot: tuple[str, ...] = ()

    def describe(self) -> str:
        others = f" (also {', '.join(self.same_bot)})" if self.same_bot else ""
        return f"{self.channel}{others}: {self.url}"


def bot_hooks(loaded: LoadedConfig, base_url: str) -> list[BotHook]:
    """The webhook of each Telegram bot of the config, or ``WebhookError``."""
    actions = loaded.config.actions.telegram
    if actions is None:
        raise WebhookError("actions.telegram is not configured (secret_token, path)")
    parts = urllib.parse.urlsplit(base_url.strip())
    if parts.username is not None or parts.password is not None:
        raise WebhookError("--url must not carry a user or password")
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
        raise WebhookError("--url must be the relay's public https:// address, e.g. https://host")
    root = urllib.parse.urlunsplit(parts).rstrip("/")
    bots: dict[tuple[str, str], list[tuple[str, TelegramSettings]]] = {}
    for name, settings in loaded.config.channels.items():
        if isinstance(settings, TelegramSettings):
            key = (settings.token.get_secret_value(), settings.api_url)
            bots.setdefault(key, []).append((name, settings))
    if not bots:
        raise WebhookError("the config has no Telegram channel")
    hooks = []
    for channels in bots.values():
        name, settings = channels[0]
        query = urllib.parse.urlencode({"bot": name})
        hooks.append(
            BotHook(
                name, settings, f"{root}{actions.path}?{query}", tuple(n for n, _ in channels[1:])
            )
        )
    return hooks


async def set_webhooks(loaded: LoadedConfig, hooks: list[BotHook]) -> list[tuple[BotHook, str]]:
    """``setWebhook`` for each bot; each with its error's reason, or "" when it was set."""
    from relay.channels.telegram import TelegramChannel  # python-telegram-bot: only here

    actions = loaded.config.actions.telegram
    assert actions is not None
    secret = actions.secret_token.get_secret_value()
    results = []
    async with aiohttp.ClientSession() as session:
        for hook in hooks:
            channel = TelegramChannel(hook.channel, hook.settings, loaded.base_dir)
            await channel.start(session)
            try:
                await channel.set_webhook(hook.url, secret, ALLOWED_UPDATES)
                results.append((hook, ""))
            except DeliveryError as exc:
                results.append((hook, exc.reason))
            finally:
                await channel.close()
    return results
