"""Every row of the HTTP contract table, against the real app and store."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.app import RELAY, build_app
from relay.config import ServerSettings, load_config
from relay.ingest import canonical_json
from relay.receiver import MAX_INT_DIGITS, SIGNATURE_HEADER, Receiver, decode_event, parse_json
from relay.routing import Router
from relay.store import open_store
from relay.store.base import StoreInspector
from tests.conftest import BASE_CONFIG, SECRET, read_jsonl, sample, wait_until

Client = TestClient[Any, web.Application]
PATH = "/webhooks/mosaic"
FUZZ = settings(
    max_examples=int(os.environ.get("RELAY_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture
async def client(
    write_config: Callable[[str], Path], aiohttp_client: Callable[..., Awaitable[Client]]
) -> Client:
    app = build_app(load_config(write_config(BASE_CONFIG), env={}))
    return await aiohttp_client(app)


def signed(secret: str = SECRET) -> dict[str, str]:
    return {SIGNATURE_HEADER: secret}


async def post(client: Client, body: Any, headers: dict[str, str] | None = None) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.post(PATH, data=data, headers=signed() if headers is None else headers)


async def test_new_event_is_accepted_after_durable_store(client: Client, tmp_path: Path) -> None:
    answer = await post(client, sample("run_finished_failed"))
    assert answer.status == 202
    body = await answer.json()
    assert body["status"] == "accepted" and len(body["event_id"]) >= 16
    store = client.app[RELAY].store
    assert await store.status()  # the job exists
    await wait_until(lambda: len(read_jsonl(tmp_path / "deliveries.jsonl")) == 1)
    line = read_jsonl(tmp_path / "deliveries.jsonl")[0]
    assert line["event_id"] == body["event_id"]
    assert line["run_id"] == "c2d9e8f7-6a5b-4c3d-2e1f-0a9b8c7d6e5f"


async def test_duplicate_answers_original_id_and_delivers_once(
    client: Client, tmp_path: Path
) -> None:
    first = await (await post(client, sample("run_progress"))).json()
    # Same content, other key order and spacing: still the same event.
    reordered = json.dumps(dict(reversed(list(sample("run_progress").items()))), indent=4)
    again = await post(client, reordered.encode())
    assert again.status == 200
    assert await again.json() == {"status": "duplicate", "event_id": first["event_id"]}
    other = await post(client, {**sample("run_progress"), "status": "completed"})
    assert other.status == 202
    await wait_until(lambda: len(read_jsonl(tmp_path / "deliveries.jsonl")) == 2)
    ids = [line["event_id"] for line in read_jsonl(tmp_path / "deliveries.jsonl")]
    assert ids.count(first["event_id"]) == 1


async def test_test_flag_answers_ok_and_is_never_deduplicated(client: Client) -> None:
    one = await post(client, sample("test"))
    two = await post(client, sample("test"))
    assert one.status == two.status == 200
    a, b = await one.json(), await two.json()
    assert a["status"] == b["status"] == "ok"
    assert a["event_id"] != b["event_id"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {SIGNATURE_HEADER: "wrong"},
        {SIGNATURE_HEADER: ""},
        {SIGNATURE_HEADER: "s3cret-ünï"},
        {SIGNATURE_HEADER: SECRET + "x"},
    ],
)
async def test_bad_or_missing_signature_is_401(client: Client, headers: dict[str, str]) -> None:
    answer = await post(client, sample("run_progress"), headers)
    assert answer.status == 401
    assert "error" in await answer.json()


async def test_repeated_signature_header_is_401(client: Client) -> None:
    answer = await client.post(
        PATH,
        data=json.dumps(sample("run_progress")),
        headers=[(SIGNATURE_HEADER, SECRET), (SIGNATURE_HEADER, SECRET)],
    )
    assert answer.status == 401
    assert "repeated" in (await answer.json())["error"]


async def test_any_configured_secret_matches(
    write_config: Callable[[str], Path], aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    text = BASE_CONFIG.replace(f'secrets: ["{SECRET}"]', 'secrets: ["old-one", "new-one"]')
    client = await aiohttp_client(build_app(load_config(write_config(text), env={})))
    for secret in ("old-one", "new-one"):
        assert (await post(client, sample("test"), signed(secret))).status == 200
    assert (await post(client, sample("test"), signed(SECRET))).status == 401


async def test_body_over_limit_is_413_before_reading(
    write_config: Callable[[str], Path], aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    text = BASE_CONFIG + "server: {max_body_bytes: 2000}\n"
    client = await aiohttp_client(build_app(load_config(write_config(text), env={})))
    big = {**sample("run_progress"), "padding": "x" * 3000}
    answer = await post(client, big)
    assert answer.status == 413
    assert "error" in await answer.json()

    async def chunked() -> Any:  # no Content-Length: counted while reading
        yield json.dumps(big).encode()

    answer = await client.post(PATH, data=chunked(), headers=signed())
    assert answer.status == 413


async def test_size_is_checked_before_signature(
    write_config: Callable[[str], Path], aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    text = BASE_CONFIG + "server: {max_body_bytes: 100}\n"
    client = await aiohttp_client(build_app(load_config(write_config(text), env={})))
    assert (await post(client, b"x" * 200, {})).status == 413


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{}", "UTF-8"),
        (b'{"flag": NaN}', "NaN"),
        (b'{"flag": Infinity}', "Infinity"),
        (b'{"n": 1e999}', "too large"),
        (b'{"n": ' + b"9" * 5000 + b"}", "too large"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
        (b'{"a":' * 40 + b"1" + b"}" * 40, "nested deeper"),
        (b"", "not valid JSON"),
        (b'\xef\xbb\xbf{"flag": "TEST"}', "BOM"),
    ],
)
async def test_bad_json_is_400(client: Client, body: bytes, fragment: str) -> None:
    answer = await post(client, body)
    assert answer.status == 400
    assert fragment in (await answer.json())["error"]


@pytest.mark.parametrize(
    "body",
    [
        [1, 2],
        "a string",
        {"flag": "RUN_FINISHED"},
        {**{"flag": "RUN_FINISHED", "agent_id": "a", "run_id": "r"}, "status": 3},
        {"flag": None, "agent_id": "a", "run_id": "r", "status": "failed"},
    ],
)
async def test_json_but_not_an_event_is_422_without_echo(client: Client, body: Any) -> None:
    answer = await post(client, body)
    assert answer.status == 422
    data = await answer.json()
    assert data["error"] and isinstance(data["details"], list)
    for detail in data["details"]:
        assert set(detail) == {"loc", "msg"}
    assert "input" not in json.dumps(data)


async def test_unknown_flags_and_extra_fields_are_accepted_and_stored(client: Client) -> None:
    body = {
        **sample("run_progress"),
        "flag": "RUN_PAUSED",
        "brand_new": {"x": [1]},
        "node_status_counts": "weird",
    }
    answer = await post(client, body)
    assert answer.status == 202
    event_id = (await answer.json())["event_id"]
    relay = client.app[RELAY]
    await wait_until(lambda: _sent(relay))
    assert event_id


async def _sent(relay: Any) -> bool:
    return any(row.state == "sent" for row in await relay.store.status())


async def test_content_type_is_not_required(client: Client) -> None:
    answer = await client.post(
        PATH, data=json.dumps(sample("test")), headers={**signed(), "Content-Type": "text/plain"}
    )
    assert answer.status == 200


async def test_shutting_down_answers_503_with_retry_after(client: Client) -> None:
    client.app[RELAY].receiver.draining = True
    answer = await post(client, sample("run_progress"))
    assert answer.status == 503
    assert answer.headers["Retry-After"]
    assert "error" in await answer.json()


async def test_store_failure_answers_503_and_nothing_is_claimed_accepted(client: Client) -> None:
    relay = client.app[RELAY]

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk full")

    relay.store.accept = broken  # type: ignore[method-assign]
    answer = await post(client, sample("run_progress"))
    assert answer.status == 503
    assert answer.headers["Retry-After"]


async def test_health_and_readiness(client: Client) -> None:
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    body = await ready.json()
    assert body["status"] == "ready" and len(body["config"]["sha256"]) == 64


async def test_readyz_503_when_store_does_not_answer(client: Client) -> None:
    relay = client.app[RELAY]

    async def down() -> None:
        raise OSError("gone")

    relay.store.ping = down  # type: ignore[method-assign]
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert any("store" in reason for reason in (await ready.json())["reasons"])


async def test_every_error_is_json_including_404_and_405(client: Client) -> None:
    missing = await client.get("/nope")
    assert missing.status == 404 and "error" in await missing.json()
    wrong = await client.get(PATH)
    assert wrong.status == 405 and "error" in await wrong.json()
    assert "POST" in wrong.headers["Allow"]


async def test_unsigned_allowed_accepts_without_header(
    write_config: Callable[[str], Path], aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    text = BASE_CONFIG.replace(f'secrets: ["{SECRET}"]', "allow_unsigned: true")
    client = await aiohttp_client(build_app(load_config(write_config(text), env={})))
    assert (await post(client, sample("run_progress"), {})).status == 202


async def test_overload_answers_503_and_keeps_what_it_accepted(
    write_config: Callable[[str], Path], aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    import asyncio

    text = BASE_CONFIG + "server: {max_in_flight: 1}\n"
    client = await aiohttp_client(build_app(load_config(write_config(text), env={})))
    relay = client.app[RELAY]
    gate = asyncio.Event()
    entered = asyncio.Event()
    real_accept = relay.store.accept

    async def slow_accept(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        await gate.wait()
        return await real_accept(*args, **kwargs)

    relay.store.accept = slow_accept  # type: ignore[method-assign]
    first = asyncio.create_task(post(client, sample("run_progress")))
    await asyncio.wait_for(entered.wait(), 5)
    second = await post(client, sample("run_finished_failed"))
    assert second.status == 503 and second.headers["Retry-After"]
    gate.set()
    assert (await first).status == 202


async def test_rejections_are_logged_without_the_header_value(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="relay.receiver")
    assert (await post(client, sample("test"), signed("wrong-secret-value"))).status == 401
    invalid = {**sample("run_finished_failed"), "run_id": 7}
    assert (await post(client, invalid)).status == 422
    partly = {**sample("run_finished_failed"), "status": None}
    assert (await post(client, partly)).status == 422
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [getattr(r, "reason", None) for r in warnings] == [
        "bad signature",
        "not a Mosaic event",
    ]  # the second 422 is held back: one line per reason per minute
    assert "127.0.0.1" in warnings[0].getMessage()
    assert all("wrong-secret-value" not in r.getMessage() for r in caplog.records)
    recent = client.app[RELAY].receiver.rejections.recent()
    assert [(r.status, r.reason) for r in recent] == [
        (422, "not a Mosaic event"),
        (422, "not a Mosaic event"),
        (401, "bad signature"),
    ]
    assert (recent[0].flag, recent[0].run_id) == (
        "RUN_FINISHED",
        sample("run_finished_failed")["run_id"],
    )


async def test_elapsed_is_shown_only_when_the_runs_start_was_seen(
    client: Client, tmp_path: Path
) -> None:
    finished = sample("run_finished_failed")
    assert (await post(client, {**finished, "run_id": "no-start-seen"})).status == 202
    started = {**sample("run_started_youtube"), "run_id": "start-seen"}
    assert (await post(client, started)).status == 202
    assert (await post(client, {**finished, "run_id": "start-seen"})).status == 202
    await wait_until(lambda: len(read_jsonl(tmp_path / "deliveries.jsonl")) == 3)
    by_run = {
        line["run_id"]: line["text"]
        for line in read_jsonl(tmp_path / "deliveries.jsonl")
        if line["flag"] == "RUN_FINISHED"
    }
    assert "Elapsed" not in by_run["no-start-seen"]  # not a wrong "0s"
    assert "Elapsed: " in by_run["start-seen"]


@dataclass(frozen=True)
class PlainIngress:
    router: Router
    secrets: tuple[bytes, ...]
    allow_unsigned: bool
    server: ServerSettings


async def test_the_receiver_needs_only_router_secrets_and_server_settings(
    write_config: Callable[[str], Path],
    tmp_path: Path,
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    config = load_config(write_config(BASE_CONFIG), env={}).config
    ingress = PlainIngress(Router.from_config(config), (SECRET.encode(),), False, config.server)
    store = open_store("sqlite:///ingress.db", tmp_path, sync="normal")
    await store.open()
    accepted: list[None] = []
    receiver = Receiver(store, lambda: ingress, lambda: accepted.append(None))
    app = web.Application()
    app.router.add_post(PATH, receiver.handle)
    client = await aiohttp_client(app)
    try:
        assert (await post(client, sample("run_progress"), {})).status == 401
        assert (await post(client, sample("run_progress"))).status == 202
        rows = [(row.channel, row.state, row.count) for row in await store.status()]
        assert rows == [("archive", "pending", 1)] and len(accepted) == 1
    finally:
        await store.close()


async def test_a_relay_key_in_a_webhook_is_dropped_before_storing(client: Client) -> None:
    spoofed = {**sample("run_progress"), "_relay": {"source": "reconciled"}}
    answer = await post(client, spoofed)
    assert answer.status == 202
    store = client.app[RELAY].store
    assert isinstance(store, StoreInspector)
    stored = await store.get_event((await answer.json())["event_id"])
    assert stored is not None and stored.body is not None
    assert "_relay" not in json.loads(stored.body)
    # Without the key it is the same event: a duplicate of the spoofed one.
    again = await post(client, sample("run_progress"))
    assert (await again.json())["status"] == "duplicate"


async def test_a_runs_end_is_deduplicated_by_run_status_and_counts(
    client: Client, tmp_path: Path
) -> None:
    finished = sample("run_finished_failed")
    first = await (await post(client, finished)).json()
    # Same end, other details (outputs, message): the same alert.
    other_details = {**finished, "status_message": "later text", "outputs": [{"id": "x"}]}
    again = await post(client, other_details)
    assert again.status == 200
    assert await again.json() == {"status": "duplicate", "event_id": first["event_id"]}
    # A resumed run that ends again with other counts is a new end.
    resumed = {**finished, "node_status_counts": {"completed": 8, "in_progress": 0, "failed": 0}}
    assert (await post(client, {**resumed, "status": "completed"})).status == 202
    await wait_until(lambda: len(read_jsonl(tmp_path / "deliveries.jsonl")) == 2)


async def test_answers_are_the_json_they_always_were(client: Client) -> None:
    def written(data: dict[str, Any]) -> bytes:
        return json.dumps(data).encode()  # as web.json_response writes it

    for body, status, outcome in [
        (sample("run_progress"), 202, "accepted"),
        (sample("run_progress"), 200, "duplicate"),
        (sample("test"), 200, "ok"),
    ]:
        answer = await post(client, body)
        assert answer.status == status
        assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
        event_id = (await answer.json())["event_id"]
        assert await answer.read() == written({"status": outcome, "event_id": event_id})


# --- the canonical bytes (stored, and hashed for dedup) ------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=1 - 10**MAX_INT_DIGITS, max_value=10**MAX_INT_DIGITS - 1)
    | st.sampled_from([2**63, -(2**63) - 1, 2**64, 0, -1])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e16, 1e-5, -0.0, 1.5e-7, 5e-324, 1e300, 0.1, 123.0])
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@FUZZ
@given(st.dictionaries(st.text(), json_values, max_size=4), st.booleans())
def test_the_canonical_bytes_are_sorted_compact_utf8_json(
    extra: dict[str, Any], ascii_body: bool
) -> None:
    payload = {**extra, "flag": "RUN_PROGRESS", "agent_id": "a", "run_id": "r", "status": "s"}
    payload.pop("_relay", None)
    body = json.dumps(payload, ensure_ascii=ascii_body).encode()
    _, canonical = decode_event(body)
    expected = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical == expected.encode() == canonical_json(parse_json(body))


@pytest.mark.parametrize(
    ("value", "written"),
    [(1.5e-7, b"1.5e-07"), (1e-5, b"1e-05"), (1e16, b"1e+16"), (-0.0, b"-0.0"), (2**64, None)],
)
def test_floats_and_big_integers_are_written_as_python_writes_them(
    value: Any, written: bytes | None
) -> None:
    body = json.dumps({**sample("test"), "n": value, "t": "\u2028é\x7f"}).encode()
    _, canonical = decode_event(body)
    assert b'"n":' + (written or str(value).encode()) + b"," in canonical
