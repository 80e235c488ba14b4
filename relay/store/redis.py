"""The scale-out store: several relay replicas share one Redis.

Every change of state is one Lua script (``redis_scripts``), so it is atomic across replicas:
``accept`` writes the dedup key, the event and its jobs in one step, and with Redis running
``appendonly yes`` + ``appendfsync always`` that step is on disk before the webhook is answered.

Per (run_id, channel) the unfinished jobs wait in a queue whose head alone sits in the ``due``
sorted set (score: when it may be claimed). ``claim`` takes due heads, gives each a stream entry
read by this replica's consumer of the ``relay`` group (or moves the entry over with XCLAIM when
the previous holder's lease ran out), and leases them. Leases and retries are judged on the
``now`` the caller passes, like the SQLite store. Finishing a job acks and deletes its entry and
puts the queue's next job into ``due``; dead letters go to their own stream. Held events
(``JobSpec.hold``) wait in a sorted set per group until ``take_held`` moves them to a list per
flush key, which expires after the retention unless ``drop_held`` deletes it first.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import re
import secrets
import socket
from collections.abc import Collection, Sequence
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError, ResponseError

from relay.store.base import (
    AcceptResult,
    ActionRecord,
    AgentName,
    ChannelStatus,
    HeldEntry,
    HeldGroup,
    Job,
    JobSpec,
    NewEvent,
    QuietRun,
    StoreError,
)
from relay.store.redis_scripts import GROUP, SCRIPTS
from relay.store.redis_writer import OrderedWriter

__all__ = ["RedisStore"]

log = logging.getLogger("relay.store")

SCHEMA_VERSION = 1
CLAIM_SCAN = 1000
"""How many due heads of excluded channels one claim may look past."""
PRUNE_CHUNK = 500
REPLAY_CHUNK = 500
KEYS_PER_CALL = 500
CLOSE_TIMEOUT = 2.0
_NAMESPACE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
AGENT_NAMES = "agent_names"
"""Hash: agent id -> JSON ``[name, fetched_at]`` (Mosaic's names; never pruned: a few per agent)."""
SESSION = "session:"
"""String per dashboard login: JSON ``[data, expires_at]``, gone at ``expires_at`` (``PXAT``)."""
ONCE = "once:"
"""String per one-time claim (``claim_once``), gone after its ttl (``PX``)."""
ACTIONS = "actions"
"""Zsets of chat actions' audit rows: every run's, and ``actions:<run_id>`` (``redis_scripts``)."""
ACTION_ROW_AT = 17
"""Where the JSON of an audit row starts in its zset member (after ``%016d:``)."""


class RedisStore:
    """``Store`` on Redis. One instance is one consumer of the job stream (one per process).

    ``sync="full"`` refuses a Redis that does not fsync every write (``appendonly yes``,
    ``appendfsync always``); ``create=False`` refuses a namespace that holds no store.
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "relay",
        retention: float = 7 * 86400.0,
        sync: Literal["full", "normal"] = "full",
        create: bool = True,
        consumer: str | None = None,
        max_connections: int = 64,
        timeout: float = 10.0,
    ) -> None:
        if not _NAMESPACE.fullmatch(namespace):
            raise StoreError("redis namespace must be 1-64 letters, digits, '_', '.' or '-'")
        if sync not in ("full", "normal"):
            raise StoreError(f"store sync must be 'full' or 'normal', not {sync!r}")
        if not retention > 0:
            raise StoreError("store retention must be positive")
        self._url = url
        self._secrets = _url_secrets(url)
        self.namespace = namespace
        self.prefix = f"{{{namespace}}}:"
        self.retention = retention
        self.sync = sync
        self.create = create
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._max_connections = max_connections
        self._timeout = timeout
        self._client: Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self._writer: OrderedWriter | None = None

    def __repr__(self) -> str:
        return f"RedisStore(namespace={self.namespace!r}, consumer={self.consumer!r})"

    @property
    def _retention_ms(self) -> int:
        return max(1, int(self.retention * 1000))

    async def open(self) -> None:
        if self._client is not None:
            return
        try:
            pool = BlockingConnectionPool.from_url(
                self._url,
                max_connections=self._max_connections,
                timeout=self._timeout,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 3),
                health_check_interval=30,
            )
        except ValueError:
            raise StoreError("store url is not a valid redis:// or rediss:// url") from None
        client = Redis.from_pool(pool)
        try:
            await client.ping()
            await self._check_schema(client)
            if self.sync == "full":
                await self._check_durability(client)
            await self._create_group(client)
        except BaseException as exc:
            await client.aclose()
            if isinstance(exc, RedisError):
                raise self._error("cannot open the redis store", exc) from None
            raise
        self._client = client
        self._scripts = {name: client.register_script(text) for name, text in SCRIPTS.items()}
        self._writer = OrderedWriter(
            client, lambda exc: self._error("redis store accept failed", exc)
        )

    async def close(self) -> None:
        """Leave the consumer group if this consumer holds no job, then disconnect."""
        client, self._client = self._client, None
        if client is None:
            return
        if self._writer is not None:
            await self._writer.wait_idle()
        with contextlib.suppress(RedisError, TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._scripts["forget_consumer"](
                    args=[self.prefix, self.consumer], client=client
                )
        await client.aclose()

    async def ping(self) -> None:
        client = self._require()
        try:
            await client.ping()
        except RedisError as exc:
            raise self._error("redis store does not answer", exc) from None

    async def accept(self, event: NewEvent, jobs: Sequence[JobSpec]) -> AcceptResult:
        """Concurrent accepts of one replica are stored in call order (one ordered pipeline)."""
        args: list[str | bytes | int] = [
            event.event_id,
            "0" if event.dedup_key is None else "1",
            event.dedup_key or "",
            self._retention_ms,
            bytes(event.body),
            event.flag,
            event.run_id,
            event.agent_id,
            event.status,
            _num(event.received_at),
        ]
        for spec in jobs:
            has_template = "0" if spec.template is None else "1"
            has_hold = "0" if spec.hold is None else "1"
            args += [spec.channel, spec.route, has_template, spec.template or "", spec.mode]
            args += [has_hold, spec.hold or "", bytes(spec.entry)]
        if self._writer is None or self._client is None:
            raise StoreError("store is not open")
        event_id, duplicate = await self._writer.call(self._scripts["accept"], [self.prefix, *args])
        return AcceptResult(_text(event_id), duplicate=bool(duplicate))

    async def claim(
        self, *, now: float, lease: float, limit: int, exclude_channels: Collection[str] = ()
    ) -> list[Job]:
        self._require()
        if limit <= 0:
            return []
        rows = await self._run(
            "claim",
            _num(now),
            _num(now + lease),
            limit,
            self.consumer,
            CLAIM_SCAN + limit,
            *exclude_channels,
        )
        return [_job(row) for row in rows]

    async def mark_sent(self, job_id: str, *, now: float, rendered: str | None = None) -> None:
        """Sent from pending or inflight, whoever holds it: it did reach the channel.
        ``rendered`` is not kept (this store keeps no attempt log)."""
        await self._run("mark_sent", job_id, _num(now))

    async def mark_retry(
        self,
        job_id: str,
        *,
        next_attempt_at: float,
        error: str,
        now: float,
        count_attempt: bool = True,
    ) -> None:
        """Only while this consumer holds the lease (a replica that lost it changes nothing).
        ``now`` is not kept (this store keeps no attempt log)."""
        count = "1" if count_attempt else "0"
        await self._run("mark_retry", job_id, _num(next_attempt_at), error, count, self.consumer)

    async def mark_dead(self, job_id: str, *, error: str, now: float) -> None:
        """Only while this consumer holds the lease."""
        await self._run("mark_dead", job_id, error, _num(now), self.consumer)

    async def release(self, job_id: str) -> None:
        """Only while this consumer holds the lease."""
        await self._run("release", job_id, self.consumer)

    async def next_due_at(self) -> float | None:
        """When ``claim`` may next find work: the earliest due head (pending: its
        ``next_attempt_at``; inflight: its lease's end). Jobs queued behind a head do not count."""
        client = self._require()
        try:
            first = await client.zrange(self.prefix + "due", 0, 0, withscores=True)
        except RedisError as exc:
            raise self._error("redis store read failed", exc) from None
        return float(first[0][1]) if first else None

    async def dead_letters(self, limit: int = 100) -> list[Job]:
        """In the order they died, oldest first."""
        self._require()
        if limit <= 0:
            return []
        return [_job(row) for row in await self._run("dead_letters", limit)]

    async def replay(self, job_id: str | None, *, now: float) -> int:
        if job_id is not None:
            return int(await self._run("replay_one", job_id, _num(now)))
        total = 0
        while True:
            revived, seen = await self._run("replay_batch", _num(now), REPLAY_CHUNK)
            total += int(revived)
            if int(seen) < REPLAY_CHUNK:
                return total

    async def status(self) -> list[ChannelStatus]:
        flat = await self._run("status")
        rows = [
            ChannelStatus(_text(flat[i]), _text(flat[i + 1]), int(flat[i + 2]), float(flat[i + 3]))
            for i in range(0, len(flat), 4)
        ]
        return sorted(rows, key=lambda row: (row.channel, row.state))

    async def prune(self, *, older_than: float) -> int:
        """Works in chunks, each its own script, so other replicas are never held up for long.
        Also forgets consumers that hold no job (those of replicas gone; a live one comes back
        by itself on its next claim)."""
        deleted, offset = 0, 0
        while True:
            gone, kept, seen = await self._run("prune_chunk", _num(older_than), offset, PRUNE_CHUNK)
            deleted += int(gone)
            offset += int(kept)
            if int(seen) < PRUNE_CHUNK:
                break
        while await self._run("prune_actions", _num(older_than), PRUNE_CHUNK) >= PRUNE_CHUNK:
            pass
        await self._run("forget_idle_consumers")
        return deleted

    async def get_ref(self, run_id: str, channel: str) -> tuple[str, str] | None:
        raw = await self._hget(f"refs:{run_id}", channel)
        if raw is None:
            return None
        channel_id, message_id = json.loads(raw)
        return str(channel_id), str(message_id)

    async def put_ref(self, run_id: str, channel: str, channel_id: str, message_id: str) -> None:
        value = json.dumps([channel_id, message_id])
        await self._run("put_run_field", "refs", run_id, channel, value, self._retention_ms)

    async def get_card_state(self, run_id: str, channel: str) -> str | None:
        return await self._hget(f"cards:{run_id}", channel)

    async def put_card_state(self, run_id: str, channel: str, state: str) -> None:
        await self._run("put_run_field", "cards", run_id, channel, state, self._retention_ms)

    async def has_newer(self, job: Job) -> bool:
        return bool(await self._run("has_newer", job.id, job.run_id, job.channel))

    async def agent_names(self) -> dict[str, AgentName]:
        client = self._require()
        try:
            raw = await client.hgetall(self.prefix + AGENT_NAMES)
        except RedisError as exc:
            raise self._error("redis store read failed", exc) from None
        names = {}
        for agent_id, value in raw.items():
            name, fetched_at = json.loads(value)
            names[_text(agent_id)] = AgentName(name, float(fetched_at))
        return names

    async def put_agent_name(self, agent_id: str, name: AgentName) -> None:
        client = self._require()
        value = json.dumps([name.name, name.fetched_at])
        try:
            await client.hset(self.prefix + AGENT_NAMES, agent_id, value)
        except RedisError as exc:
            raise self._error("redis store write failed", exc) from None

    async def put_session(self, key: str, data: str, *, expires_at: float) -> None:
        """Redis drops the key at ``expires_at`` by its own clock; ``get_session`` also checks
        the caller's ``now``, so a session never outlives ``expires_at`` on either clock."""
        client = self._require()
        value = json.dumps([data, expires_at])
        try:
            await client.set(
                self.prefix + SESSION + key, value, pxat=max(1, int(expires_at * 1000))
            )
        except RedisError as exc:
            raise self._error("redis store write failed", exc) from None

    async def get_session(self, key: str, *, now: float) -> str | None:
        client = self._require()
        try:
            raw = await client.get(self.prefix + SESSION + key)
        except RedisError as exc:
            raise self._error("redis store read failed", exc) from None
        if raw is None:
            return None
        data, expires_at = json.loads(raw)
        return str(data) if float(expires_at) > now else None

    async def delete_session(self, key: str) -> None:
        client = self._require()
        try:
            await client.delete(self.prefix + SESSION + key)
        except RedisError as exc:
            raise self._error("redis store write failed", exc) from None

    async def known_dedup_keys(self, keys: Collection[str]) -> set[str]:
        client = self._require()
        wanted = list(dict.fromkeys(keys))
        found: set[str] = set()
        for start in range(0, len(wanted), KEYS_PER_CALL):
            chunk = wanted[start : start + KEYS_PER_CALL]
            try:
                values = await client.mget([self.prefix + "dedup:" + key for key in chunk])
            except RedisError as exc:
                raise self._error("redis store read failed", exc) from None
            found.update(key for key, value in zip(chunk, values, strict=True) if value)
        return found

    async def quiet_runs(self, *, before: float, limit: int = 1000) -> list[QuietRun]:
        if limit <= 0:
            return []
        rows = await self._run("quiet_runs", _num(before), limit)
        return [
            QuietRun(_text(run_id), _text(agent_id), float(at), bytes(body))
            for run_id, at, agent_id, body in rows
        ]

    async def held_groups(self) -> list[HeldGroup]:
        rows = await self._run("held_groups")
        groups = [
            HeldGroup(
                _text(group),
                _text(channel),
                _text(route),
                None if template is None else _text(template),
                int(count),
                float(oldest),
            )
            for group, channel, route, template, count, oldest in rows
        ]
        return sorted(groups, key=lambda group: group.group)

    async def take_held(self, group: str, *, before: float, key: str) -> list[HeldEntry]:
        """What ``key`` took is kept for a retention (by Redis's clock) unless dropped."""
        flat = await self._run("take_held", group, _num(before), key, self._retention_ms)
        return [HeldEntry(float(flat[i]), bytes(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def taken_keys(self) -> list[str]:
        return sorted(_text(key) for key in await self._run("taken_keys"))

    async def drop_held(self, key: str) -> None:
        await self._run("drop_held", key)

    async def take_lease(self, name: str, *, ttl: float) -> bool:
        """``SET NX PX``: the first replica to ask holds it for ``ttl``; the others are refused."""
        client = self._require()
        try:
            taken = await client.set(
                self.prefix + "lease:" + name, self.consumer, nx=True, px=max(1, int(ttl * 1000))
            )
        except RedisError as exc:
            raise self._error("redis store lease failed", exc) from None
        return bool(taken)

    async def claim_once(self, key: str, *, ttl: float) -> bool:
        """``SET NX PX``: the first caller holds ``key`` for ``ttl`` (by Redis's clock)."""
        client = self._require()
        try:
            taken = await client.set(
                self.prefix + ONCE + key, "1", nx=True, px=max(1, int(ttl * 1000))
            )
        except RedisError as exc:
            raise self._error("redis store claim failed", exc) from None
        return bool(taken)

    async def record_action(self, record: ActionRecord) -> None:
        """Rows older than a retention before ``record.at`` go as it is added."""
        row = json.dumps(dataclasses.astuple(record))
        cutoff = _num(record.at - self.retention)
        await self._run(
            "record_action", _num(record.at), record.run_id, row, cutoff, self._retention_ms
        )

    async def list_actions(
        self, *, run_id: str | None = None, limit: int = 100
    ) -> list[ActionRecord]:
        """Newest first: by ``at``, then by recording order."""
        if limit <= 0:
            return []
        client = self._require()
        key = self.prefix + ACTIONS + ("" if run_id is None else ":" + run_id)
        try:
            members = await client.zrevrange(key, 0, limit - 1)
        except RedisError as exc:
            raise self._error("redis store read failed", exc) from None
        return [_action(_text(member)[ACTION_ROW_AT:]) for member in members]

    async def acquire_rate(self, key: str, per_second: float, burst: int, now: float) -> float:
        """Take a token from the bucket ``key`` shared by every replica: 0.0 when taken, else
        the seconds until one is available. The bucket starts full (``burst`` tokens)."""
        if not per_second > 0 or burst < 1:
            raise ValueError("a rate limit needs per_second > 0 and burst >= 1")
        wait = await self._run("acquire_rate", key, _num(per_second), burst, _num(now))
        return float(wait)

    def _require(self) -> Redis:
        if self._client is None:
            raise StoreError("store is not open")
        return self._client

    async def _run(self, name: str, *args: str | bytes | int) -> Any:
        self._require()
        try:
            return await self._scripts[name](args=[self.prefix, *args])
        except RedisError as exc:
            raise self._error(f"redis store {name.replace('_', ' ')} failed", exc) from None

    async def _hget(self, key: str, field: str) -> str | None:
        client = self._require()
        try:
            raw = await client.hget(self.prefix + key, field)
        except RedisError as exc:
            raise self._error("redis store read failed", exc) from None
        return None if raw is None else _text(raw)

    async def _check_schema(self, client: Redis) -> None:
        meta = self.prefix + "meta"
        version = await client.hget(meta, "schema")
        if version is None:
            if not self.create:
                raise StoreError(f"redis store namespace {self.namespace!r} holds no store")
            await client.hsetnx(meta, "schema", SCHEMA_VERSION)
        elif int(version) > SCHEMA_VERSION:
            raise StoreError(
                f"redis store namespace {self.namespace!r} has schema version {int(version)}; "
                f"this relay knows up to {SCHEMA_VERSION} (upgrade the relay)"
            )

    async def _create_group(self, client: Redis) -> None:
        try:
            await client.xgroup_create(self.prefix + "jobs", GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _check_durability(self, client: Redis) -> None:
        """Refuse a Redis that may lose an acknowledged write: not fsyncing each write to its
        append-only file, or evicting keys when memory runs out."""
        try:
            raw = {**await client.config_get("append*"), **await client.config_get("maxmemory-*")}
        except ResponseError:
            log.warning(
                "cannot read the Redis settings (CONFIG refused); accepted events are durable "
                "only if Redis runs with appendonly yes, appendfsync always and "
                "maxmemory-policy noeviction"
            )
            return
        config = {_text(key): _text(value) for key, value in raw.items()}
        wanted = {"appendonly": "yes", "appendfsync": "always", "maxmemory-policy": "noeviction"}
        wrong = [
            f"{key} {config.get(key)}" for key, value in wanted.items() if config.get(key) != value
        ]
        if wrong:
            raise StoreError(
                "store sync 'full' needs Redis with appendonly yes, appendfsync always and "
                f"maxmemory-policy noeviction (this one has {', '.join(wrong)}): configure "
                "Redis so, or set store sync to 'normal' to accept losing acknowledged events "
                "if Redis crashes or runs out of memory"
            )

    def _error(self, message: str, exc: BaseException) -> StoreError:
        detail = f"{type(exc).__name__}: {exc}"
        for secret in self._secrets:
            detail = detail.replace(secret, "***")
        return StoreError(f"{message}: {detail}")


def _url_secrets(url: str) -> list[str]:
    """The password (and user) a URL carries, to scrub them from error text."""
    try:
        parts = urlsplit(url)
        found = [parts.password, parts.username]
    except ValueError:
        return []
    return [value for raw in found if raw for value in {raw, unquote(raw)}]


def _action(row: str) -> ActionRecord:
    """An audit row from the JSON ``record_action`` wrote (its fields in order)."""
    return ActionRecord(*json.loads(row))


def _num(value: float) -> str:
    """A float as text Redis parses back exactly."""
    return repr(float(value))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _job(flat: list[bytes]) -> Job:
    fields = {_text(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}

    def text(name: str) -> str:
        return _text(fields[name])

    def optional(name: str) -> str | None:
        return _text(fields[name]) if name in fields else None

    created_at = float(fields["created_at"])
    return Job(
        id=text("id"),
        event_id=text("event_id"),
        run_id=text("run_id"),
        channel=text("channel"),
        route=text("route"),
        template=optional("template"),
        mode=text("mode"),
        state=text("state"),
        attempts=int(fields["attempts"]),
        created_at=created_at,
        next_attempt_at=float(fields["next_attempt_at"]),
        last_error=optional("last_error"),
        body=bytes(fields.get("body", b"")),
        run_started_at=float(fields["run_started_at"]) if "run_started_at" in fields else None,
        age_from=float(fields["age_from"]),
    )
