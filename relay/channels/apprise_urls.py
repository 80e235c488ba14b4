"""Apprise URLs into plugins: the checks behind ``type: apprise`` settings and its channel.

Apprise is told to send plain text (``body_format`` TEXT: a Markdown or HTML target gets the
text escaped, not interpreted), to keep no state on disk, to follow no redirect and to retry
nothing (the relay retries, durably). Its logger (``apprise``, the one every plugin uses) is
covered by the secret filter of ``relay.channels.scrub`` with each URL's parts registered
before Apprise sees the URL, and logs from WARNING up unless the operator set its level.
"""

from __future__ import annotations

import logging

from apprise import Apprise, AppriseAsset, NotifyFormat
from apprise.apprise import N_MGR
from apprise.plugins.base import NotifyBase

from relay.channels.apprise_parts import scheme_of, secret_parts
from relay.channels.scrub import hide_in_logs

__all__ = ["LOGGER_NAME", "new_asset", "plugin_for", "url_problem"]

LOGGER_NAME = "apprise"

_logger = logging.getLogger(LOGGER_NAME)
if _logger.level == logging.NOTSET:  # its INFO says "Sent …" per message; ours says it once
    _logger.setLevel(logging.WARNING)


def new_asset(timeout: float = 15.0) -> AppriseAsset:
    """Apprise's settings for the relay: plain text, no retries, no disk, no redirects."""
    return AppriseAsset(
        app_id="Mosaic Relay",
        app_desc="Mosaic Relay",
        async_mode=True,
        body_format=NotifyFormat.TEXT,
        interpret_escapes=False,
        interpret_emojis=False,
        default_service_retry=0,
        http_redirects=False,
        storage_mode="memory",
        service_timeout=timeout,
    )


_CHECK_ASSET = new_asset()


def plugin_for(url: str, asset: AppriseAsset | None = None) -> NotifyBase | None:
    """Apprise's plugin for ``url``, or None when Apprise cannot use it (see ``url_problem``).

    The URL's parts are masked in every library log before Apprise parses it.
    """
    hide_in_logs(*secret_parts(url))
    try:
        plugin = Apprise.instantiate(url, asset=asset or _CHECK_ASSET, suppress_exceptions=False)
    except Exception:  # a plugin refusing a token raises with the token in its message
        return None
    return plugin if isinstance(plugin, NotifyBase) else None


def url_problem(url: str) -> str | None:
    """Why Apprise cannot use ``url``, naming its scheme at most; None when it can."""
    scheme = scheme_of(url)
    if scheme is None:
        return "is not an Apprise URL (scheme://…, e.g. ntfy://topic)"
    if scheme not in N_MGR:
        return f"unknown Apprise scheme '{scheme}://'"
    if not N_MGR[scheme].enabled:
        return f"Apprise's '{scheme}://' is not available here (a library it needs is missing)"
    if plugin_for(url) is None:
        return (
            f"Apprise cannot use this {scheme}:// URL: a part is missing or invalid "
            "(see Apprise's page for this service)"
        )
    return None
