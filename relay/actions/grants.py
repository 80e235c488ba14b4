"""Grants: what a button allows, stored under the random id its value carries.

Kept in the store's expiring key/value (as dashboard sessions), keyed by the SHA-256 of the id,
so the store never holds a usable button value. A value that is not ours finds nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import asdict

from relay.actions.model import BUTTON_PREFIX, Action, Button, Grant
from relay.store.base import Store

__all__ = ["LABELS", "claim_key", "find", "issue"]

LABELS: dict[Action, tuple[str, str | None]] = {
    "resume": ("Resume", "primary"),
    "cancel": ("Cancel run", "danger"),
    "rerun": ("Re-run", None),
}
"""Each action's button label and style."""
_ID = re.compile(r"[A-Za-z0-9_-]{22}")


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def _id_of(value: str) -> str | None:
    grant_id = value.removeprefix(BUTTON_PREFIX)
    return grant_id if value.startswith(BUTTON_PREFIX) and _ID.fullmatch(grant_id) else None


async def issue(store: Store, grant: Grant) -> Button:
    """Store ``grant`` until it expires; the button that names it."""
    grant_id = secrets.token_urlsafe(16)
    data = json.dumps(asdict(grant), separators=(",", ":"))
    await store.put_session("grant:" + _digest(grant_id), data, expires_at=grant.expires_at)
    label, style = LABELS[grant.action]
    return Button(grant.action, label, BUTTON_PREFIX + grant_id, style)  # type: ignore[arg-type]


async def find(store: Store, value: str, *, now: float) -> Grant | None:
    """The unexpired grant a pressed button's value names; None for anything else."""
    grant_id = _id_of(value)
    if grant_id is None:
        return None
    data = await store.get_session("grant:" + _digest(grant_id), now=now)
    if data is None:
        return None
    fields = json.loads(data)
    fields["video_urls"] = tuple(fields.get("video_urls", ()))
    return Grant(**fields)


def claim_key(value: str) -> str:
    """The store key a press of this button claims, once."""
    return "action-pressed:" + _digest(value)
