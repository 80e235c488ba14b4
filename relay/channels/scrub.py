"""Keeping secrets out of delivery reasons and logs: scrubbing, fingerprints, log filters.

Client libraries put secrets where we cannot stop them: python-telegram-bot builds URLs with the
bot token in the path and logs them, httpx logs every request URL at INFO, slack-sdk logs the
incoming-webhook URL at DEBUG, Apprise's plugins parts of their URLs. ``hide_in_logs`` registers
a secret; a filter on those libraries' loggers replaces it with ``***`` before any handler sees
the record.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable

__all__ = ["MASK", "SDK_LOGGER", "fingerprint", "hide_in_logs", "scrub"]

MASK = "***"

SDK_LOGGER = "relay.channels.sdk"
"""The logger handed to slack-sdk clients (its own would log the webhook URL unfiltered)."""

# A logger's filters see only records created on that very logger, so each name is listed.
_FILTERED_LOGGERS = (
    SDK_LOGGER,
    "httpx",
    "telegram",
    "telegram.Bot",
    "telegram.ext.ExtBot",
    "telegram.request",
    "telegram.request.BaseRequest",
    "telegram.request.HTTPXRequest",
    "relay.mosaic",  # the Mosaic API client (relay.mosaic.client.LOGGER_NAME)
    "apprise",  # every Apprise plugin logs here (relay.channels.apprise_urls.LOGGER_NAME)
    "urllib3.connectionpool",  # Apprise's HTTP client logs each request's path at DEBUG
)


def fingerprint(secret: str) -> str:
    """A short, stable, non-reversible id of a secret (for rate keys and metrics labels)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:12]


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every (non-trivial) secret replaced by ``***``, ignoring case.

    Case is ignored because libraries reshape messages: python-telegram-bot ``capitalize()``s
    API errors, which lower-cases a token quoted in them.
    """
    for secret in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = re.sub(re.escape(secret), MASK, text, flags=re.IGNORECASE)
    return text


class _SecretFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            text = record.getMessage()
        except Exception:  # a broken format string is the library's bug, not ours to raise
            return True
        clean = scrub(text, self.secrets)
        if clean != text:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            exc_text = logging.Formatter().formatException(record.exc_info)
            if scrub(exc_text, self.secrets) != exc_text:
                record.exc_info, record.exc_text = None, None
                record.msg = f"{record.msg} [traceback hidden: it contained a secret]"
        return True


_FILTER = _SecretFilter()


def hide_in_logs(*secrets: str | None) -> None:
    """Mask these secrets in everything the HTTP client libraries log (process-wide)."""
    # A new set, not an update: Apprise logs from its worker threads while a filter iterates.
    _FILTER.secrets = _FILTER.secrets | {s for s in secrets if s and len(s) >= 4}
    for name in _FILTERED_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
