"""Email channel: one multipart/alternative mail (text + optional HTML) per message, over SMTP.

Mails of one run thread together in mail clients: each carries ``In-Reply-To``/``References``
pointing at an id derived from the run id (a parent that is never sent itself). Every header value
is made one line (``oneline``: no line breaks or control characters), so event text cannot add
headers.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
from email.message import EmailMessage
from pathlib import Path
from typing import ClassVar

import aiohttp
import aiosmtplib

from relay.channels.base import (
    DeliveryError,
    Limits,
    Message,
    MessageRef,
    PermanentError,
    RetryableError,
    VerifyError,
)
from relay.channels.email_settings import EmailSettings
from relay.channels.scrub import scrub
from relay.confmodel import RateLimit
from relay.text import oneline

__all__ = ["EmailChannel", "EmailSettings", "build_mail", "classify_smtp_error"]

log = logging.getLogger(__name__)

DEFAULT_SUBJECT = "Mosaic run update"


def thread_id(run_id: str, domain: str) -> str:
    """The stable Message-ID all mails of one run refer to."""
    digest = hashlib.sha256(run_id.encode("utf-8")).hexdigest()[:24]
    return f"<run-{digest}@{domain}>"


def build_mail(
    settings: EmailSettings, message: Message, *, in_reply_to: str | None = None
) -> EmailMessage:
    """The mail for ``message``; ``in_reply_to`` is a previous mail's Message-ID."""
    domain = settings.domain
    mail = EmailMessage()
    mail["Subject"] = oneline(message.subject or DEFAULT_SUBJECT) or DEFAULT_SUBJECT
    mail["From"] = oneline(settings.from_)
    mail["To"] = ", ".join(oneline(a) for a in settings.to)
    if settings.cc:
        mail["Cc"] = ", ".join(oneline(a) for a in settings.cc)
    mail["Date"] = email.utils.formatdate(localtime=True)
    mail["Message-ID"] = email.utils.make_msgid(idstring="relay", domain=domain)
    mail["Auto-Submitted"] = "auto-generated"
    mail["X-Auto-Response-Suppress"] = "All"
    references = [thread_id(message.run_id, domain)] if message.run_id else []
    if in_reply_to:
        references.append(oneline(in_reply_to))
    if references:
        mail["In-Reply-To"] = references[-1]
        mail["References"] = " ".join(references)
    mail.set_content(message.text)
    if message.html:
        mail.add_alternative(message.html, subtype="html")
    return mail


def classify_smtp_error(exc: BaseException, secrets: list[str | None]) -> DeliveryError | None:
    """The SMTP retry decision, or None when ``exc`` is not a delivery failure."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = ", ".join(f"{r.recipient}: {r.code}" for r in exc.recipients)
        reason = f"SMTP server refused every recipient ({codes})"
        if any(400 <= r.code < 500 for r in exc.recipients):  # greylisting, full mailbox
            return RetryableError(reason)
        return PermanentError(reason)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        reason = f"SMTP login refused ({exc.code}): {scrub(exc.message, secrets)}"
        return RetryableError(reason) if 400 <= exc.code < 500 else PermanentError(reason)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        reason = f"SMTP server answered {exc.code}: {scrub(exc.message, secrets)}"
        return RetryableError(reason) if 400 <= exc.code < 500 else PermanentError(reason)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return RetryableError("timed out talking to the SMTP server")
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected | OSError):
        return RetryableError(f"cannot reach the SMTP server ({type(exc).__name__})")
    if isinstance(exc, aiosmtplib.SMTPException):
        return PermanentError(f"SMTP failure: {scrub(exc.message, secrets)}")
    return None


class EmailChannel:
    render_kind: ClassVar[str] = "email"
    limits: ClassVar[Limits] = Limits(text=100_000, subject=200)
    default_rate_limit: ClassVar[RateLimit | None] = None

    def __init__(self, name: str, settings: EmailSettings, base_dir: Path) -> None:
        self.name = name
        self.settings = settings
        self._password = settings.password.get_secret_value() if settings.password else None

    def __repr__(self) -> str:
        settings = self.settings
        return f"EmailChannel(name={self.name!r}, host={settings.host!r}, to={settings.to!r})"

    @property
    def rate_key(self) -> str:
        return f"email:{self.settings.host}:{self.settings.port}:{self.settings.username or ''}"

    async def start(self, session: aiohttp.ClientSession) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send(self, message: Message) -> MessageRef | None:
        return await self._deliver(build_mail(self.settings, message))

    async def reply(
        self, ref: MessageRef, message: Message, *, broadcast: bool = False
    ) -> MessageRef | None:
        """A mail answering the one ``ref`` names (``In-Reply-To`` its Message-ID)."""
        return await self._deliver(build_mail(self.settings, message, in_reply_to=ref.message_id))

    async def verify(self) -> str:
        """Connect, EHLO (TLS or STARTTLS per ``security``), log in when configured, QUIT."""
        settings = self.settings
        smtp = aiosmtplib.SMTP(
            hostname=settings.host,
            port=settings.port,
            use_tls=settings.security == "tls",
            start_tls=settings.security == "starttls",
            timeout=settings.timeout,
        )
        try:
            await smtp.connect()
            if smtp.is_ehlo_or_helo_needed:
                await smtp.ehlo()
            if settings.username is not None and self._password is not None:
                await smtp.login(settings.username, self._password)
            await smtp.quit()
        except Exception as exc:
            decided = classify_smtp_error(exc, [self._password])
            if decided is None:
                raise
            raise VerifyError(decided.reason) from None
        finally:
            if smtp.is_connected:
                smtp.close()
        done = "logged in" if settings.username else "connected"
        return f"{done} at {settings.host}:{settings.port} ({settings.security})"

    async def _deliver(self, mail: EmailMessage) -> MessageRef:
        settings = self.settings
        try:
            errors, _ = await aiosmtplib.send(
                mail,
                hostname=settings.host,
                port=settings.port,
                username=settings.username,
                password=self._password,
                use_tls=settings.security == "tls",
                start_tls=settings.security == "starttls",
                timeout=settings.timeout,
            )
        except Exception as exc:
            decided = classify_smtp_error(exc, [self._password])
            if decided is None:
                raise
            raise decided from None
        if errors:
            refused = ", ".join(f"{rcpt}: {resp.code}" for rcpt, resp in errors.items())
            log.warning("channel %s: some recipients were refused (%s)", self.name, refused)
        return MessageRef(channel_id=", ".join(settings.to), message_id=str(mail["Message-ID"]))
