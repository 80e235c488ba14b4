"""Email channel against a real in-process aiosmtpd server."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from relay.channels.base import Message, MessageRef, PermanentError, RetryableError
from relay.channels.email import EmailChannel, EmailSettings, build_mail, thread_id
from tests.channels.conftest import SMTP_PASSWORD, SMTP_USER, StartSmtp


def settings(port: int, **overrides: Any) -> EmailSettings:
    data: dict[str, Any] = {
        "type": "email",
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "from": "Mosaic Relay <relay@example.com>",
        "to": ["leads@example.com", "ops@example.com"],
        "timeout": 5,
    }
    data.update(overrides)
    return EmailSettings.model_validate(data)


def message(**overrides: Any) -> Message:
    data: dict[str, Any] = {
        "text": "Run failed: 3 of 5 nodes",
        "subject": "Run failed · Shorts cutter",
        "html": "<p>Run <b>failed</b></p>",
        "run_id": "run-42",
        "event_id": "ev-1",
    }
    data.update(overrides)
    return Message(**data)


async def send(port: int, msg: Message, **overrides: Any) -> MessageRef | None:
    channel = EmailChannel("mail", settings(port, **overrides), Path("."))
    return await channel.send(msg)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_mail_parts_and_headers(smtp_server: StartSmtp) -> None:
    server = await smtp_server()
    ref = await send(server.port, message(), cc=["boss@example.org"])

    [mail] = server.mails
    assert mail["Subject"] == "Run failed · Shorts cutter"
    assert mail["From"] == "Mosaic Relay <relay@example.com>"
    assert mail["To"] == "leads@example.com, ops@example.com"
    assert mail["Cc"] == "boss@example.org"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail.get_content_type() == "multipart/alternative"
    text_part = mail.get_body(preferencelist=("plain",))
    html_part = mail.get_body(preferencelist=("html",))
    assert text_part is not None and html_part is not None
    assert text_part.get_content().strip() == "Run failed: 3 of 5 nodes"
    assert html_part.get_content().strip() == "<p>Run <b>failed</b></p>"
    assert set(server.envelopes[0].rcpt_tos) == {
        "leads@example.com",
        "ops@example.com",
        "boss@example.org",
    }
    assert ref is not None and ref.message_id == mail["Message-ID"]
    assert mail["Message-ID"].endswith("@example.com>")


async def test_non_ascii_subject_is_encoded(smtp_server: StartSmtp) -> None:
    server = await smtp_server()
    await send(server.port, message(subject="Vidéo prête ✅ «titre»"))
    raw = server.envelopes[0].original_content or b""
    subject_line = next(line for line in raw.splitlines() if line.startswith(b"Subject:"))
    assert subject_line.isascii() and b"=?utf-8?" in subject_line
    assert server.mails[0]["Subject"] == "Vidéo prête ✅ «titre»"


async def test_text_only_without_html(smtp_server: StartSmtp) -> None:
    server = await smtp_server()
    await send(server.port, message(html=None, subject=None))
    [mail] = server.mails
    assert mail.get_content_type() == "text/plain"
    assert mail["Subject"] == "Mosaic run update"


def test_line_breaks_cannot_inject_headers() -> None:
    mail = build_mail(
        settings(25), message(subject="Done\r\nBcc: victim@example.net\nX-Evil: 1", run_id="r")
    )
    text = mail.as_string()
    assert "\nBcc:" not in text and "\nX-Evil:" not in text
    assert mail["Subject"] == "Done Bcc: victim@example.net X-Evil: 1"


def test_header_values_carry_no_control_characters() -> None:
    mail = build_mail(settings(25), message(subject="\x1b[31mDone\x07\u2028\u0085now", run_id="r"))
    assert mail["Subject"] == "[31mDone now"


def test_an_address_may_hold_a_tab_but_no_line_separator() -> None:
    assert settings(25, **{"from": "Mosaic\tRelay <relay@example.com>"}).from_
    with pytest.raises(ValidationError, match="line breaks"):
        settings(25, to=["a@example.com\u2028Bcc: x@example.net"])


def test_mails_of_one_run_thread_together() -> None:
    config = settings(25)
    first = build_mail(config, message(run_id="run-A"))
    second = build_mail(config, message(run_id="run-A"))
    other = build_mail(config, message(run_id="run-B"))
    assert first["Message-ID"] != second["Message-ID"]
    assert first["In-Reply-To"] == second["In-Reply-To"] == thread_id("run-A", "example.com")
    assert first["References"] == thread_id("run-A", "example.com")
    assert other["In-Reply-To"] != first["In-Reply-To"]
    assert "run-A" not in first["In-Reply-To"]  # hashed, not pasted


async def test_reply_refers_to_the_earlier_mail(smtp_server: StartSmtp) -> None:
    server = await smtp_server()
    channel = EmailChannel("mail", settings(server.port), Path("."))
    parent = await channel.send(message())
    assert parent is not None
    child = await channel.reply(parent, message(text="update"))
    assert child is not None and child.message_id != parent.message_id
    reply_mail = server.mails[1]
    assert reply_mail["In-Reply-To"] == parent.message_id
    assert reply_mail["References"].split() == [
        thread_id("run-42", "example.com"),
        parent.message_id,
    ]


async def test_login(smtp_server: StartSmtp) -> None:
    server = await smtp_server(auth=True)
    await send(server.port, message(), username=SMTP_USER, password=SMTP_PASSWORD)
    assert server.logins == [(SMTP_USER, SMTP_PASSWORD)]
    assert len(server.mails) == 1


async def test_wrong_password_is_permanent(smtp_server: StartSmtp) -> None:
    server = await smtp_server(auth=True)
    with pytest.raises(PermanentError) as caught:
        await send(server.port, message(), username=SMTP_USER, password="wrong-password-1")
    assert "535" in caught.value.reason
    assert "wrong-password-1" not in str(caught.value)
    assert server.mails == []


async def test_451_is_retryable(smtp_server: StartSmtp) -> None:
    server = await smtp_server()
    server.data_answer = "451 Requested action aborted: local error"
    with pytest.raises(RetryableError) as caught:
        await send(server.port, message())
    assert "451" in caught.value.reason and not caught.value.rate_limited


async def test_550_is_permanent(smtp_server: StartSmtp) -> None:
    server = await smtp_server()
    server.data_answer = "550 Message rejected as spam"
    with pytest.raises(PermanentError, match="550"):
        await send(server.port, message())


async def test_all_recipients_refused_is_permanent(smtp_server: StartSmtp) -> None:
    server = await smtp_server()
    server.rcpt_answer = "550 No such user"
    with pytest.raises(PermanentError, match="refused every recipient"):
        await send(server.port, message())


async def test_greylisted_recipients_are_retryable(smtp_server: StartSmtp) -> None:
    server = await smtp_server()
    server.rcpt_answer = "450 Greylisted, try again later"
    with pytest.raises(RetryableError, match="450"):
        await send(server.port, message())


async def test_some_recipients_refused_still_sends(
    smtp_server: StartSmtp, caplog: pytest.LogCaptureFixture
) -> None:
    server = await smtp_server()
    original = server.handle_RCPT

    async def refuse_ops(*args: Any) -> str:
        if args[3] == "ops@example.com":
            return "550 No such user"
        return await original(*args)

    server.handle_RCPT = refuse_ops  # type: ignore[method-assign,assignment]
    assert await send(server.port, message()) is not None
    assert server.envelopes[0].rcpt_tos == ["leads@example.com"]
    assert "ops@example.com: 550" in caplog.text


async def test_connection_refused_is_retryable() -> None:
    with pytest.raises(RetryableError, match="cannot reach"):
        await send(free_port(), message())


async def test_starttls_required_but_not_offered_is_permanent(smtp_server: StartSmtp) -> None:
    server = await smtp_server(auth=True)
    with pytest.raises(PermanentError) as caught:
        await send(
            server.port, message(), security="starttls", username=SMTP_USER, password=SMTP_PASSWORD
        )
    assert SMTP_PASSWORD not in str(caught.value)
    assert server.logins == [] and server.mails == []


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"to": []}, "to"),
        ({"from": "not an address"}, "from"),
        ({"to": ["a@example.com\nBcc: x@example.net"]}, "line breaks"),
        ({"username": SMTP_USER}, "both"),
        ({"security": "ssl"}, "security"),
        ({"frm": "x@example.com"}, "frm"),
    ],
)
def test_settings_errors(overrides: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        settings(25, **overrides)


def test_settings_accept_from_key_and_hide_password() -> None:
    config = settings(25, username=SMTP_USER, password=SMTP_PASSWORD)
    assert config.from_ == "Mosaic Relay <relay@example.com>"
    assert SMTP_PASSWORD not in repr(config) and SMTP_PASSWORD not in str(config)
    assert config.model_dump(by_alias=True)["from"] == config.from_
