"""Secure defaults, resource limits, template sandboxing and secret hygiene of the config.

Each test names one promise of SECURITY.md and checks it against the real app (on a real port
where the promise is about the connection itself).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from relay.app import RELAY, build_app
from relay.cli import main, summary
from relay.config import ConfigError, LoadedConfig, RelayConfig, ServerSettings, load_config
from relay.receiver import SIGNATURE_HEADER
from tests.conftest import BASE_CONFIG, SECRET, read_jsonl, sample, wait_until

Client = TestClient[Any, web.Application]
MakeClient = Callable[[str], Awaitable[Client]]
PATH = "/webhooks/mosaic"
ROOT = Path(__file__).resolve().parent.parent
SIGNED = {SIGNATURE_HEADER: SECRET}


@pytest.fixture
def make_client(
    write_config: Callable[[str], Path], aiohttp_client: Callable[..., Awaitable[Client]]
) -> MakeClient:
    async def make(text: str) -> Client:
        return await aiohttp_client(build_app(load_config(write_config(text), env={})))

    return make


def with_server(**settings: Any) -> str:
    return BASE_CONFIG + f"server: {json.dumps(settings)}\n"


def without_secret(extra: str = "") -> str:
    return BASE_CONFIG.replace(f'secrets: ["{SECRET}"]', extra or "secrets: []")


async def read_answer(reader: asyncio.StreamReader) -> bytes:
    """One answer: its head and ``Content-Length`` bytes of body (the server may linger on)."""
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        return head + await reader.readexactly(length)


async def raw_exchange(client: Client, data: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes on a fresh connection; everything read until the server closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(timeout):
            return await reader.read()
    finally:
        writer.close()


def json_body(raw: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"application/json" in head, raw[:300]
    return int(head.split(b" ")[1]), json.loads(body)


# --- secure defaults ------------------------------------------------------------------------------


def test_binds_to_loopback_unless_told_otherwise() -> None:
    assert ServerSettings().host == "127.0.0.1"
    assert RelayConfig().server.host == "127.0.0.1"
    example = load_config(ROOT / "relay.yaml.example", env={})
    assert example.config.server.host == "127.0.0.1"


def test_no_secret_refuses_to_load_and_to_start(tmp_path: Path) -> None:
    config = tmp_path / "relay.yaml"
    config.write_text(without_secret('secrets: ["${MOSAIC_WEBHOOK_SECRET}"]'))
    with pytest.raises(ConfigError, match=r"no webhook secret.*MOSAIC_WEBHOOK_SECRET"):
        load_config(config, env={})
    assert main(["check", "-c", str(config)]) == 1


async def test_a_config_without_secrets_that_skipped_validation_refuses_every_webhook(
    tmp_path: Path, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    unchecked = RelayConfig.model_validate({"auth": {"secrets": []}})
    loaded = LoadedConfig(unchecked, tmp_path / "relay.yaml", tmp_path, "0" * 64, ())
    client = await aiohttp_client(build_app(loaded))
    assert (await client.post(PATH, json=sample("run_progress"))).status == 401
    assert (await client.post(PATH, json=sample("run_progress"), headers=SIGNED)).status == 401


async def test_allow_unsigned_is_logged_loudly(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    client = await make_client(without_secret("allow_unsigned: true"))
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING and "ANYONE" in r.message]
    assert loud, "allow_unsigned must warn"
    assert (await client.post(PATH, json=sample("run_progress"))).status == 202


async def test_configured_secrets_are_enforced_even_with_allow_unsigned(
    make_client: MakeClient,
) -> None:
    client = await make_client(BASE_CONFIG.replace("auth:\n", "auth:\n  allow_unsigned: true\n"))
    assert (await client.post(PATH, json=sample("run_progress"))).status == 401
    assert (await client.post(PATH, json=sample("run_progress"), headers=SIGNED)).status == 202


async def test_the_example_secret_is_a_loud_warning(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    await make_client(BASE_CONFIG.replace(SECRET, "dev-secret"))
    assert any("example default" in r.message for r in caplog.records)
    caplog.clear()
    await make_client(BASE_CONFIG)
    assert not any("example default" in r.message for r in caplog.records)


async def test_signature_is_compared_in_constant_time_against_every_secret(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await make_client(BASE_CONFIG.replace(f'"{SECRET}"', '"first-secret", "second"'))
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    headers = {SIGNATURE_HEADER: "first-secret"}
    assert (await client.post(PATH, json=sample("test"), headers=headers)).status == 200
    assert calls == [(b"first-secret", b"first-secret"), (b"first-secret", b"second")]


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/-/reload"), ("GET", "/api/x"), ("POST", "/api/x"), ("GET", "/ui"), ("GET", "/ui/")],
)
async def test_admin_endpoints_do_not_exist_without_admin_token(
    make_client: MakeClient, method: str, path: str
) -> None:
    client = await make_client(BASE_CONFIG)
    answer = await client.request(method, path, headers={"Authorization": "Bearer anything"})
    assert answer.status == 404
    assert "error" in await answer.json()


async def test_any_method_on_an_admin_path_is_404_without_admin_token(
    make_client: MakeClient,
) -> None:
    client = await make_client(BASE_CONFIG)
    assert (await client.get("/-/reload")).status == 404


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic adm1n-t0ken",
        "Bearer adm1n-t0ke",
        "Bearer adm1n-t0kenx",
        "Bearer ADM1N-T0KEN",
        "Bearer adm1n-t0ken-ünï",
        "Bearer " + SECRET,
    ],
)
async def test_admin_token_is_required_and_compared_in_constant_time(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch, authorization: str | None
) -> None:
    client = await make_client(with_server(admin_token="adm1n-t0ken"))
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    headers = {} if authorization is None else {"Authorization": authorization}
    answer = await client.post("/-/reload", headers=headers)
    assert answer.status == 401
    assert "error" in await answer.json()
    assert all(isinstance(a, bytes) and b == b"adm1n-t0ken" for a, b in compared)

    good = await client.post("/-/reload", headers={"Authorization": "Bearer adm1n-t0ken"})
    assert good.status == 200
    assert compared[-1] == (b"adm1n-t0ken", b"adm1n-t0ken")


# --- resource limits ------------------------------------------------------------------------------


async def test_a_declared_oversize_body_is_refused_before_it_is_sent(
    make_client: MakeClient,
) -> None:
    client = await make_client(with_server(max_body_bytes=1000))
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n"
        f"{SIGNATURE_HEADER}: {SECRET}\r\nContent-Length: 10000000000\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    try:
        writer.write(head.encode())
        await writer.drain()
        status, body = json_body(await read_answer(reader))
    finally:
        writer.close()
    assert status == 413 and "1000 bytes" in body["error"]


async def test_a_compressed_body_counts_at_its_decompressed_size(make_client: MakeClient) -> None:
    client = await make_client(with_server(max_body_bytes=100_000))
    bomb = gzip.compress(b'{"pad": "' + b"0" * 5_000_000 + b'"}')
    assert len(bomb) < 100_000
    headers = {**SIGNED, "Content-Encoding": "gzip"}
    answer = await client.post(PATH, data=bomb, headers=headers)
    assert answer.status == 413


async def test_an_undecodable_body_is_a_json_400(make_client: MakeClient) -> None:
    client = await make_client(BASE_CONFIG)
    headers = {**SIGNED, "Content-Encoding": "gzip"}
    # expect100: the handler is already waiting for the body when it arrives and fails to decode.
    answer = await client.post(PATH, data=b"not gzip at all", headers=headers, expect100=True)
    assert answer.status == 400
    assert "cannot read the body" in (await answer.json())["error"]


async def test_a_slow_body_gets_408_and_frees_its_slot(make_client: MakeClient) -> None:
    client = await make_client(with_server(read_timeout="1s", max_in_flight=1))
    receiver = client.app[RELAY].receiver
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: relay\r\n{SIGNATURE_HEADER}: {SECRET}\r\n"
        "Content-Length: 500\r\n\r\n"
    )
    writer.write(head.encode() + b'{"flag": ')
    await writer.drain()
    try:
        await wait_until(lambda: receiver._in_flight == 1)
        # Not kept alive: it would idle past the 1 s keep-alive limit (read_timeout) while the
        # slow body times out, and the last post below would reuse a connection being closed.
        busy = await client.post(
            PATH, json=sample("test"), headers={**SIGNED, "Connection": "close"}
        )
        assert busy.status == 503 and busy.headers["Retry-After"].isdigit()
        raw = await read_answer(reader)
    finally:
        writer.close()
    status, body = json_body(raw)
    assert status == 408 and "within 1s" in body["error"]
    assert b"Connection: close" in raw
    assert (await client.post(PATH, json=sample("test"), headers=SIGNED)).status == 200


async def test_a_body_that_never_completes_decoding_cannot_hold_a_slot(
    make_client: MakeClient,
) -> None:
    """A deflate stream cut short: aiohttp's parser used to keep it, and the waiting handler
    (and its slot) with it; the relay decodes bodies itself, so it is a JSON 400 at once."""
    client = await make_client(with_server(read_timeout="300ms", max_in_flight=1))
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: relay\r\n{SIGNATURE_HEADER}: {SECRET}\r\n"
        "Content-Encoding: deflate\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"
    )
    try:
        writer.write(head.encode())
        await writer.drain()
        async with asyncio.timeout(5):
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 100")
        writer.write(b"\x00")
        await writer.drain()
        status, _ = json_body(await read_answer(reader))
    finally:
        writer.close()
    assert status == 400
    assert (await client.post(PATH, json=sample("test"), headers=SIGNED)).status == 200


@pytest.mark.parametrize(
    "sent",
    [b"", b"POST /webhooks/mosaic HTTP/1.1\r\nHost: relay\r\nX-Mosaic-Sig"],
    ids=["idle", "partial-head"],
)
async def test_a_connection_without_a_complete_head_is_closed_at_the_deadline(
    make_client: MakeClient, sent: bytes
) -> None:
    client = await make_client(with_server(read_timeout="200ms"))
    # raw_exchange reads until the server closes (TimeoutError if it never does).
    assert await raw_exchange(client, sent, timeout=5) == b""
    assert (await client.get("/healthz")).status == 200


async def test_a_trickled_head_is_cut_off_at_the_deadline(make_client: MakeClient) -> None:
    client = await make_client(with_server(read_timeout="300ms"))
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    head = f"POST {PATH} HTTP/1.1\r\nHost: relay\r\nX-Padding: ".encode() + b"a" * 1000
    cut_off = False  # by the server, before the 1,000-odd bytes (20 s at this pace) were sent
    try:
        for byte in head:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.02)
            if reader.at_eof() or writer.is_closing():
                cut_off = True
                break
        async with asyncio.timeout(5):
            rest = await reader.read()
    except ConnectionError:
        rest, cut_off = b"", True
    finally:
        writer.close()
    assert cut_off and rest == b"", "a slow head kept its connection"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'{"x": ' + b"[" * 31 + b"]" * 31 + b"}", 202),
        (b'{"x": ' + b"[" * 32 + b"]" * 32 + b"}", 400),
        (b'{"x": ' + b"9" * 30 + b"}", 202),
        (b'{"x": -' + b"9" * 31 + b"}", 400),
        (b'{"x": "\\ud83d\\ude00"}', 202),
        (b'{"x": "\\ud83d"}', 400),
        (b'{"x": "\\udc00\\ud83d"}', 400),
        (b'{"\\udfff": 1}', 400),
        (b'{"x": "\\\\ud800"}', 202),
    ],
    ids=[
        "depth-32",
        "depth-33",
        "30-digits",
        "31-digits",
        "surrogate-pair",
        "lone-high-surrogate",
        "reversed-pair",
        "lone-surrogate-key",
        "escaped-backslash",
    ],
)
async def test_json_limits_at_their_boundaries(
    make_client: MakeClient, body: bytes, status: int
) -> None:
    client = await make_client(BASE_CONFIG)
    event = json.dumps(sample("run_progress"))[1:].encode()
    answer = await client.post(PATH, data=body[:-1] + b", " + event, headers=SIGNED)
    assert answer.status == status, await answer.text()


# --- templates ------------------------------------------------------------------------------------

ESCAPES = {
    "mro": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "globals": "{{ cycler.__init__.__globals__.os.environ }}",
    "include": "{% include '/etc/passwd' %}",
    "import": "{% import 'os' as os %}{{ os.environ }}",
    "range": "{{ range(10**7) | list | length }}",
    "setattr": "{% set x = namespace() %}{{ trigger.__setattr__('type', 'x') }}",
}


async def test_sandbox_escapes_dead_letter_only_their_delivery(
    make_client: MakeClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAY_CANARY", "canary-8f7e6d")
    channels = "".join(
        f"  {name}:\n    type: file\n    path: {name}.jsonl\n    template: {name}\n"
        for name in ESCAPES
    )
    templates = "".join(
        f"  {name}:\n    text: {json.dumps(src)}\n" for name, src in ESCAPES.items()
    )
    text = (
        BASE_CONFIG.replace("channels:\n", "channels:\n" + channels)
        .replace("to: [archive]\n  - name: tests", f"to: [archive, {', '.join(ESCAPES)}]\n  - name: tests")
        + "templates:\n"
        + templates
    )  # fmt: skip
    client = await make_client(text)
    assert (
        await client.post(PATH, json=sample("run_finished_failed"), headers=SIGNED)
    ).status == 202
    store = client.app[RELAY].store

    async def settled() -> bool:
        return all(row.state in ("sent", "dead") for row in await store.status())

    await wait_until(settled)
    assert len(read_jsonl(tmp_path / "deliveries.jsonl")) == 1
    dead = {job.channel: job.last_error or "" for job in await store.dead_letters()}
    assert set(dead) == set(ESCAPES), dead
    for name, reason in dead.items():
        assert reason.startswith(f"template error: template '{name}'"), reason
        assert "canary-8f7e6d" not in reason and "root:" not in reason
        assert not (tmp_path / f"{name}.jsonl").exists()


def test_a_template_syntax_error_fails_the_load_with_its_line(tmp_path: Path) -> None:
    config = tmp_path / "relay.yaml"
    config.write_text(BASE_CONFIG + 'templates:\n  bad:\n    text: "{{ trigger.video_title "\n')
    with pytest.raises(ConfigError) as caught:
        load_config(config, env={})
    (issue,) = caught.value.issues
    assert issue.where == "templates.bad.text" and issue.line == BASE_CONFIG.count("\n") + 3


# --- secrets in config objects, summaries and errors ----------------------------------------------

SECRETS = {
    "WEBHOOK_SECRET": "wh-s3cret-value-1a",
    "ADMIN_TOKEN": "adm1n-s3cret-2b",
    "SLACK_TOKEN": "xoxb-s3cret-3c",
    "SLACK_HOOK": "https://hooks.slack.example/services/T0/B0/s3cretpath4d",
    "TELEGRAM_TOKEN": "123:s3cret-5e",
    "SMTP_PASSWORD": "smtp-s3cret-6f",
    "HOOK_URL": "https://hooks.example/in/s3cret-7a",
    "HOOK_HEADER": "Bearer hdr-s3cret-8b",
    "HOOK_HMAC": "hmac-s3cret-9c",
}
ALL_CHANNELS = """
server: {admin_token: "${ADMIN_TOKEN}"}
auth: {secrets: ["${WEBHOOK_SECRET}"]}
channels:
  slack: {type: slack, token: "${SLACK_TOKEN}", channel: "#alerts"}
  slack-hook: {type: slack, webhook_url: "${SLACK_HOOK}"}
  telegram: {type: telegram, token: "${TELEGRAM_TOKEN}", chat_id: "-100"}
  email:
    type: email
    host: smtp.example.com
    username: relay@example.com
    password: "${SMTP_PASSWORD}"
    from: relay@example.com
    to: [leads@example.com]
  hook:
    type: webhook
    url: "${HOOK_URL}"
    headers: {Authorization: "${HOOK_HEADER}"}
    secret: "${HOOK_HMAC}"
routes:
  - to: [slack, slack-hook, telegram, email, hook]
"""


def assert_no_secret(text: str, secrets: Any = None) -> None:
    for secret in SECRETS.values() if secrets is None else secrets:
        assert secret not in text and secret.lower() not in text.lower(), secret
    assert "s3cret" not in text


def test_secrets_are_masked_in_config_objects_and_summaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "relay.yaml"
    config.write_text(ALL_CHANNELS)
    loaded = load_config(config)
    dumped = loaded.config.model_dump(mode="json")
    texts = [
        repr(loaded),
        str(loaded.config),
        repr(loaded.config.channels),
        json.dumps(dumped),
        loaded.config.model_dump_json(),
        summary(loaded),
    ]
    for text in texts:
        assert_no_secret(text)
    assert main(["check", "-c", str(config)]) == 0
    out = capsys.readouterr()
    assert "slack-hook (slack)" in out.out
    assert_no_secret(out.out + out.err)
    digest = hashlib.sha256(config.read_bytes()).hexdigest()
    assert loaded.sha256 == digest  # the config file, not its secrets, is fingerprinted


@pytest.mark.parametrize(
    ("channel", "secret"),
    [
        ('{type: slack, webhook_url: "not-a-url-s3cret1"}', "not-a-url-s3cret1"),
        ('{type: slack, webhook_url: "ftp://u:pa55-s3cret2@h/x"}', "pa55-s3cret2"),
        ('{type: slack, token: "xoxb-s3cret3", webhook_url: "https://h/s3cret4"}', "s3cret"),
        ('{type: telegram, token: "12/s3cret5", chat_id: 1}', "s3cret5"),
        ('{type: telegram, token: "123:s3cret6"}', "s3cret6"),
        ('{type: webhook, url: "gopher://h/s3cret7"}', "s3cret7"),
        ('{type: webhook, url: "https://h/", headers: {X: "a\\r\\nB: s3cret8"}}', "s3cret8"),
        ('{type: webhook, url: "https://h/", secret: 42, tokn: "s3cret9"}', "s3cret9"),
        (
            '{type: email, host: h, from: a@b.c, to: [d@e.f], password: "p-s3cret10"}',
            "p-s3cret10",
        ),
    ],
)
def test_config_errors_never_echo_a_secret(tmp_path: Path, channel: str, secret: str) -> None:
    config = tmp_path / "relay.yaml"
    config.write_text(f"auth: {{secrets: [wh-s3cret0]}}\nchannels:\n  c: {channel}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config, env={})
    message = str(caught.value)
    assert "channels.c" in message
    assert_no_secret(message, [secret, "wh-s3cret0"])


async def test_unsigned_slow_bodies_cannot_take_the_webhook_slots(make_client: MakeClient) -> None:
    """25 unsigned clients that declare a body and send one byte of it are refused on their
    headers: they never hold one of the 5 slots, and signed webhooks keep being accepted."""
    client = await make_client(with_server(max_in_flight=5, read_timeout="30s"))
    receiver = client.app[RELAY].receiver
    head = f"POST {PATH} HTTP/1.1\r\nHost: relay\r\nContent-Length: 1000\r\n\r\n{{".encode()
    attackers = [await asyncio.open_connection("127.0.0.1", client.server.port) for _ in range(25)]
    try:
        for _, writer in attackers:
            writer.write(head)
            await writer.drain()
        answers = [json_body(await read_answer(reader)) for reader, _ in attackers]
        assert {status for status, _ in answers} == {401}
        assert receiver._in_flight == 0
        for _ in range(5):
            good = await client.post(PATH, json=sample("test"), headers=SIGNED)
            assert good.status == 200
    finally:
        for _, writer in attackers:
            writer.close()


async def test_repeated_json_keys_are_refused(make_client: MakeClient) -> None:
    client = await make_client(BASE_CONFIG)
    body = json.dumps(sample("run_finished_failed"))[:-1] + ', "flag": "TEST"}'
    answer = await client.post(PATH, data=body.encode(), headers=SIGNED)
    assert answer.status == 400
    assert "'flag' appears twice" in (await answer.json())["error"]
    nested = (
        b'{"flag": "TEST", "agent_id": "a", "run_id": "r", "status": "s", "x": {"k": 1, "k": 2}}'
    )
    assert (await client.post(PATH, data=nested, headers=SIGNED)).status == 400


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, br"])
async def test_an_encoding_the_relay_does_not_decode_is_a_json_415(
    make_client: MakeClient, encoding: str
) -> None:
    """Sent with its headers in one packet, a br body used to be refused by aiohttp's parser
    with a plain-text 400 ("install Brotli")."""
    client = await make_client(BASE_CONFIG)
    body = json.dumps(sample("test")).encode()
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n"
        f"{SIGNATURE_HEADER}: {SECRET}\r\nContent-Encoding: {encoding}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    status, answer = json_body(await raw_exchange(client, head.encode() + body))
    assert status == 415 and "not supported" in answer["error"]


async def test_a_gzip_webhook_is_accepted(make_client: MakeClient) -> None:
    client = await make_client(BASE_CONFIG)
    body = gzip.compress(json.dumps(sample("run_progress")).encode())
    headers = {**SIGNED, "Content-Encoding": "gzip"}
    assert (await client.post(PATH, data=body, headers=headers)).status == 202
