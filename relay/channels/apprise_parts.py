"""The parts of an Apprise URL, read without Apprise: its scheme (the one part errors may name)
and the parts that may be secrets (masked in logs)."""

from __future__ import annotations

import re
import urllib.parse

__all__ = ["scheme_of", "secret_parts"]

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}")


def scheme_of(url: str) -> str | None:
    """The URL's scheme in lower case (``ntfy``), or None when it has none worth naming."""
    head, separator, _ = url.partition("://")
    return head.lower() if separator and _SCHEME.fullmatch(head) else None


def secret_parts(url: str) -> list[str]:
    """``url`` and each part of it that may be a secret: user, password, host (an ntfy topic,
    a Pushover key), path segments, query values and fragment; for masking in logs."""
    parts = [url]
    _, _, rest = url.partition("://")
    rest, _, fragment = rest.partition("#")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    credentials, _, host = netloc.rpartition("@")
    parts += [*credentials.split(":", 1), host, *(p for p in host.split(":") if not p.isdigit())]
    parts += [*(urllib.parse.unquote(s) for s in path.split("/")), fragment]
    for _, value in urllib.parse.parse_qsl(query, keep_blank_values=False):
        parts.append(value)
    return [part for part in dict.fromkeys(parts) if part]
