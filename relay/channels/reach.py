"""Whether a URL's host answers: DNS, a TCP connection and, for https, a TLS handshake.

Used by checks that must not send a request (a POST to an incoming webhook would post). The
reasons name the host and port only: the rest of such URLs is often a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import urllib.parse

from relay.channels.base import VerifyError

__all__ = ["reach"]


async def reach(url: str, *, within: float) -> str:
    """``host:port`` (with " over TLS" for https) once it answered; else ``VerifyError``."""
    parts = urllib.parse.urlsplit(url)
    host, tls = parts.hostname or "", parts.scheme == "https"
    try:
        port = parts.port or (443 if tls else 80)
    except ValueError:
        raise VerifyError(f"the URL of host {host} has no valid port") from None
    where = f"{host}:{port}"
    try:
        async with asyncio.timeout(within):
            await _resolve(host, port)
            _, writer = await asyncio.open_connection(
                host, port, ssl=ssl.create_default_context() if tls else None
            )
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
    except TimeoutError:
        raise VerifyError(f"no answer from {where} within {within:g}s") from None
    except ssl.SSLError as exc:
        raise VerifyError(f"TLS handshake with {where} failed ({exc.reason or 'error'})") from None
    except OSError as exc:
        raise VerifyError(f"cannot connect to {where} ({type(exc).__name__})") from None
    return f"{where} answers" + (" over TLS" if tls else "")


async def _resolve(host: str, port: int) -> None:
    try:
        await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise VerifyError(f"cannot resolve host {host}") from None
