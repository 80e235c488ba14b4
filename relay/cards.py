"""Live run cards: one message per run and channel that edits itself, replies under it.

A card job (route ``mode: card``) never regresses the card: an event ranks by (terminal, nodes
finished, nodes completed), and one that ranks below what the card shows is skipped. A job with a
newer job of the same run queued behind it is superseded (only the newest state is sent), and
edits are at most one per ``card_interval``. Replies (``thread: true``) go under the card for node
failures and final outputs, each once, in the markup of the channel's kind (``render_reply``). A
kind without live cards (email: each update would be one more mail) is sent at start and finish
only. Refs and the card's bookkeeping are in the store, so a restarted relay keeps editing the
same card.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from relay.channels import Channel, Message, MessageRef
from relay.channels.base import EditableChannel, ThreadedChannel
from relay.events import Event
from relay.render import Reply, render_reply
from relay.render.kinds import kind_named
from relay.render.limits import safe_url
from relay.routing import Route
from relay.store.base import Job, Store

__all__ = ["CardState", "Done", "Later", "Reply", "card_rank", "replies_for", "run_card_job"]


@dataclass
class CardState:
    rank: list[int] = field(default_factory=lambda: [-1, -1, -1])
    fingerprint: str = ""
    last_edit: float = 0.0
    replied: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str | None) -> CardState:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(
            **{k: data[k] for k in ("rank", "fingerprint", "last_edit", "replied") if k in data}
        )

    def dump(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


def card_rank(event: Event) -> list[int]:
    """Terminal beats running; more nodes finished beats fewer."""
    counts = event.counts
    return [int(event.is_terminal), counts.completed + counts.failed, counts.completed]


def replies_for(event: Event) -> list[Reply]:
    """Node failures (with their status_message) and, at the end, each final output.

    The typed view holds ``MAX_ITEMS`` (20) nodes and outputs at most, so one event never fans
    out into more than twice that many replies.
    """
    replies = []
    for node in event.updated_nodes:
        if node.status == "failed":
            name = node.original_node_id or "a node"
            replies.append(
                Reply(f"fail:{name}", f"Node {name} failed", node.status_message, None, True)
            )
    if event.flag == "RUN_FINISHED":
        for index, output in enumerate(event.outputs):
            key = f"out:{output.id or index}"
            title = f"Output {index + 1}" + (
                f" ({output.original_node_id})" if output.original_node_id else ""
            )
            replies.append(Reply(key, title, None, safe_url(output.video_url), False))
    return replies


@dataclass(frozen=True)
class Done:
    """The job is finished (sent, or rightly skipped)."""

    note: str
    rendered: str | None = None
    """The card's text when this job posted or edited it (the card as it stands now)."""


@dataclass(frozen=True)
class Later:
    """Try the job again at ``at`` (the card's edit interval)."""

    at: float


def _fingerprint(message: Message) -> str:
    payload = json.dumps([message.text, message.blocks, message.caption], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _can_edit(channel: Channel) -> bool:
    return isinstance(channel, EditableChannel) and bool(getattr(channel, "can_edit", True))


async def run_card_job(
    job: Job,
    event: Event,
    route: Route,
    channel: Channel,
    store: Store,
    render: Callable[[], Awaitable[Message]],
    now: float,
    send: Callable[[Awaitable[Any]], Awaitable[Any]],
) -> Done | Later:
    """Post, edit or skip the card for ``job``; then send its new replies.

    ``send`` wraps each channel call (timeout); channel errors propagate to the dispatcher, which
    retries the job — already-sent replies are recorded and not sent again.
    """
    state = CardState.parse(await store.get_card_state(job.run_id, job.channel))
    stored_ref = await store.get_ref(job.run_id, job.channel)
    ref = MessageRef(*stored_ref) if stored_ref else None
    rank = card_rank(event)
    shown = bool(state.fingerprint)
    kind = kind_named(channel.render_kind)
    rendered: list[Message] = []

    async def message() -> Message:
        if not rendered:
            rendered.append(await render())
        return rendered[0]

    shows: str | None = None
    if shown and rank < state.rank:
        note = "skipped: older than the card"
    elif shown and not event.is_terminal and await store.has_newer(job):
        note = "skipped: a newer state is queued"
    elif shown and not kind.live_cards and not event.is_terminal:
        note = f"skipped: {kind.name} cards mail at start and finish only"
    elif shown and now < state.last_edit + route.card_interval:
        return Later(state.last_edit + route.card_interval)
    elif shown and _fingerprint(await message()) == state.fingerprint:
        note = "skipped: card unchanged"
    else:
        if ref is not None and _can_edit(channel):
            assert isinstance(channel, EditableChannel)
            await send(channel.edit(ref, await message()))
            note = "card updated"
        else:
            sent = await send(channel.send(await message()))
            note = "card re-posted (channel cannot edit)" if shown else "card posted"
            if ref is None and isinstance(sent, MessageRef):
                ref = sent
                await store.put_ref(job.run_id, job.channel, sent.channel_id, sent.message_id)
        shows = (await message()).text
        state.rank = max(state.rank, rank)
        state.fingerprint = _fingerprint(await message())
        state.last_edit = now
        await store.put_card_state(job.run_id, job.channel, state.dump())

    if route.thread and ref is not None and isinstance(channel, ThreadedChannel):
        for reply in replies_for(event):
            if reply.key in state.replied:
                continue
            broadcast = reply.failure and route.broadcast_failures
            text = render_reply(kind.name, reply, await message(), channel.limits)
            await send(channel.reply(ref, text, broadcast=broadcast))
            state.replied.append(reply.key)
            await store.put_card_state(job.run_id, job.channel, state.dump())
    return Done(note, shows)
