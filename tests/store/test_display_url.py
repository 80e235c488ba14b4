from __future__ import annotations

import pytest

from relay.store import display_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:hunter2@redis:6379/0", "redis://***@redis:6379/0"),
        ("rediss://user:hunter2@host/1", "rediss://***@host/1"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("sqlite:///relay.db", "sqlite:///relay.db"),
    ],
)
def test_passwords_never_shown(url: str, shown: str) -> None:
    assert display_url(url) == shown
