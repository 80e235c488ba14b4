"""The one HTTP status table: every status class, and Retry-After handling."""

from __future__ import annotations

import pytest

from relay.channels.base import (
    PermanentError,
    RetryableError,
    classify_http_status,
    parse_retry_after,
)


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_success(status: int) -> None:
    assert classify_http_status(status) is None


@pytest.mark.parametrize(
    ("status", "retry_after", "expected_kind", "expected_wait"),
    [
        (429, "2", RetryableError, 2.0),
        (429, None, RetryableError, None),
        (429, "Wed, 21 Oct 2015 07:28:00 GMT", RetryableError, None),
        (500, None, RetryableError, None),
        (502, None, RetryableError, None),
        (503, "7", RetryableError, 7.0),
        (504, None, RetryableError, None),
        (599, None, RetryableError, None),
        (408, None, RetryableError, None),
        (425, None, RetryableError, None),
        (300, None, PermanentError, None),
        (301, None, PermanentError, None),
        (302, None, PermanentError, None),
        (400, None, PermanentError, None),
        (401, None, PermanentError, None),
        (403, None, PermanentError, None),
        (404, None, PermanentError, None),
        (410, None, PermanentError, None),
        (413, None, PermanentError, None),
        (422, None, PermanentError, None),
        (100, None, PermanentError, None),
    ],
)
def test_status_table(
    status: int, retry_after: str | None, expected_kind: type, expected_wait: float | None
) -> None:
    decided = classify_http_status(status, retry_after=retry_after, detail="example")
    assert type(decided) is expected_kind
    assert decided is not None
    assert str(status) in decided.reason and "example" in decided.reason
    if isinstance(decided, RetryableError):
        assert decided.retry_after == expected_wait
        assert decided.rate_limited is (status == 429)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", 2.0),
        (2, 2.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-1", None),
        ("nan", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("999999999", 86_400.0),
    ],
)
def test_parse_retry_after(value: str | int | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected
