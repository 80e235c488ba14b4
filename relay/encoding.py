"""Request bodies' ``Content-Encoding``, decoded by the relay rather than by aiohttp's parser.

aiohttp decodes a compressed body in its HTTP parser, before any handler runs, and refuses an
encoding it cannot decode (``br`` without Brotli, ``zstd``) with a plain-text 400. The app turns
that off (``auto_decompress=False``) so that every answer is JSON: ``gzip`` and ``deflate`` are
decoded here with the output bounded (a small bomb cannot expand past ``limit``), anything else
gets 415.
"""

from __future__ import annotations

import zlib

__all__ = [
    "DECODABLE",
    "BadEncoding",
    "TooLarge",
    "UnsupportedEncoding",
    "check_supported",
    "decode_body",
]

DECODABLE = ("gzip", "x-gzip", "deflate")


class UnsupportedEncoding(ValueError):
    """A ``Content-Encoding`` the relay does not decode (415)."""


class BadEncoding(ValueError):
    """The body is not in the encoding it claims (400)."""


class TooLarge(ValueError):
    """The decoded body is larger than the limit (413)."""


def check_supported(content_encoding: str | None) -> list[str]:
    """The codings to undo, last applied first; ``UnsupportedEncoding`` for one not decoded here."""
    codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
    for coding in codings:
        if coding != "identity" and coding not in DECODABLE:
            raise UnsupportedEncoding(
                f"Content-Encoding {coding[:40]!r} is not supported: send gzip, deflate or none"
            )
    return [c for c in reversed(codings) if c != "identity"]


def decode_body(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """``body`` decoded per its ``Content-Encoding`` header (``identity`` or none: as is)."""
    for coding in check_supported(content_encoding):
        body = _inflate(body, coding, limit)
    return body


def _inflate(body: bytes, coding: str, limit: int) -> bytes:
    # wbits: 16+ = gzip framing; 32+ = zlib or gzip detected from the header (deflate as sent
    # by most clients is zlib-wrapped); raw deflate is retried when the header is missing.
    attempts = (
        (16 + zlib.MAX_WBITS,) if "gzip" in coding else (32 + zlib.MAX_WBITS, -zlib.MAX_WBITS)
    )
    for wbits in attempts:
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(body, limit + 1)
        except zlib.error:
            continue
        if len(out) > limit:
            raise TooLarge(f"body larger than {limit} bytes once decoded")
        if not inflater.eof or inflater.unused_data:
            raise BadEncoding(f"body is not complete {coding} data")
        return out
    raise BadEncoding(f"body is not valid {coding} data")
