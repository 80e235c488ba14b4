"""Durable storage of events and delivery jobs, chosen by ``store.url``.

``RedisStore`` (and so redis-py) is imported only when a ``redis://`` URL is opened or the name
is asked for: a relay on SQLite does not load it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relay.store.base import (
    AcceptResult,
    ChannelStatus,
    Job,
    JobSpec,
    JobState,
    NewEvent,
    Store,
    StoreError,
)
from relay.store.sqlite import SharedSQLiteStore, SQLiteStore

if TYPE_CHECKING:
    from relay.store.redis import RedisStore

__all__ = [
    "AcceptResult",
    "ChannelStatus",
    "Job",
    "JobSpec",
    "JobState",
    "NewEvent",
    "RedisStore",
    "SQLiteStore",
    "SharedSQLiteStore",
    "Store",
    "StoreError",
    "display_url",
    "open_store",
]

_SQLITE_FORMS = "sqlite:///relay.db (relative to the config file) or sqlite:////absolute/path.db"


def open_store(
    url: str,
    base_dir: Path,
    *,
    sync: str,
    create: bool = True,
    retention: float = 7 * 86400.0,
    workers: int = 1,
) -> Store:
    """The store ``url`` names, not yet opened (``await store.open()``).

    A relative SQLite path is resolved against ``base_dir``; with ``workers`` > 1 (processes
    sharing the file) it is a ``SharedSQLiteStore``, which keeps the rate limits in the file.
    ``redis://`` and ``rediss://`` URLs open a ``RedisStore`` (dedup keys expire after
    ``retention``). Error messages never repeat the URL: a Redis URL may carry a password.
    """
    if sync not in ("full", "normal"):
        raise StoreError(f"store sync must be 'full' or 'normal', not {sync!r}")
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme):
        raise StoreError(f"store url must look like {_SQLITE_FORMS}")
    if scheme in ("redis", "rediss"):
        from relay.store.redis import RedisStore

        return RedisStore(
            url, retention=retention, sync="full" if sync == "full" else "normal", create=create
        )
    if scheme != "sqlite":
        raise StoreError(
            f"unknown store url scheme {scheme!r}: use {_SQLITE_FORMS}, "
            "or redis://host:6379/0 for several replicas"
        )
    if not rest.startswith("/") or rest == "/" or any(ch in rest for ch in "?#"):
        raise StoreError(f"store url must look like {_SQLITE_FORMS}")
    path = Path(rest[1:])
    kind = SharedSQLiteStore if workers > 1 else SQLiteStore
    return kind(
        path if path.is_absolute() else base_dir / path,
        sync="full" if sync == "full" else "normal",
        create=create,
    )


if not TYPE_CHECKING:  # to mypy, a module ``__getattr__`` would make every unknown name Any

    def __getattr__(name: str) -> Any:
        """``RedisStore``, imported on first use (``from relay.store import RedisStore``)."""
        if name == "RedisStore":
            from relay.store.redis import RedisStore

            return RedisStore
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def display_url(url: str) -> str:
    """``url`` fit to print: any user and password replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    return f"{scheme}{sep}{netloc}{slash}{path}"
