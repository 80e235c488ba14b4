"""Durable storage of events and delivery jobs, chosen by ``store.url``."""

from __future__ import annotations

import re
from pathlib import Path

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
from relay.store.sqlite import SQLiteStore

__all__ = [
    "AcceptResult",
    "ChannelStatus",
    "Job",
    "JobSpec",
    "JobState",
    "NewEvent",
    "SQLiteStore",
    "Store",
    "StoreError",
    "open_store",
]

_SQLITE_FORMS = "sqlite:///relay.db (relative to the config file) or sqlite:////absolute/path.db"


def open_store(url: str, base_dir: Path, *, sync: str, create: bool = True) -> Store:
    """The store ``url`` names, not yet opened (``await store.open()``).

    A relative SQLite path is resolved against ``base_dir``. Error messages never repeat the URL:
    a Redis URL may carry a password.
    """
    if sync not in ("full", "normal"):
        raise StoreError(f"store sync must be 'full' or 'normal', not {sync!r}")
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme):
        raise StoreError(f"store url must look like {_SQLITE_FORMS}")
    if scheme in ("redis", "rediss"):
        raise StoreError("redis store not available yet: use " + _SQLITE_FORMS)
    if scheme != "sqlite":
        raise StoreError(f"unknown store url scheme {scheme!r}: use {_SQLITE_FORMS}")
    if not rest.startswith("/") or rest == "/" or any(ch in rest for ch in "?#"):
        raise StoreError(f"store url must look like {_SQLITE_FORMS}")
    path = Path(rest[1:])
    return SQLiteStore(
        path if path.is_absolute() else base_dir / path,
        sync="full" if sync == "full" else "normal",
        create=create,
    )
