"""Content-Encoding decoding: gzip and deflate bounded, anything else refused."""

from __future__ import annotations

import gzip
import zlib

import pytest

from relay.encoding import BadEncoding, TooLarge, UnsupportedEncoding, decode_body

DATA = b'{"flag": "TEST"}' * 10


@pytest.mark.parametrize(
    ("encoding", "encoded"),
    [
        (None, DATA),
        ("identity", DATA),
        ("gzip", gzip.compress(DATA)),
        ("x-gzip", gzip.compress(DATA)),
        ("deflate", zlib.compress(DATA)),
        ("Deflate", zlib.compress(DATA)[2:-4]),  # raw deflate, as a few clients send it
        ("deflate, gzip", gzip.compress(zlib.compress(DATA))),
    ],
)
def test_decodes(encoding: str | None, encoded: bytes) -> None:
    assert decode_body(encoded, encoding, limit=10_000) == DATA


def test_a_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"0" * 50_000_000)
    with pytest.raises(TooLarge):
        decode_body(bomb, "gzip", limit=100_000)


@pytest.mark.parametrize(
    "encoded", [b"not gzip", gzip.compress(DATA)[:-5], gzip.compress(DATA) + b"x"]
)
def test_bad_or_cut_data(encoded: bytes) -> None:
    with pytest.raises(BadEncoding):
        decode_body(encoded, "gzip", limit=10_000)


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, br"])
def test_unsupported(encoding: str) -> None:
    with pytest.raises(UnsupportedEncoding):
        decode_body(DATA, encoding, limit=10_000)
