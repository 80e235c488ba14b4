"""Building blocks shared by the config models."""

from __future__ import annotations

from relay.confmodel import route_label


def test_a_route_is_named_by_its_name_else_by_its_place() -> None:
    assert route_label("vip", 3) == "vip"
    assert route_label(None, 3) == "routes[3]"
    assert route_label("", 0) == "routes[0]"


def test_a_quoted_label_quotes_only_a_name() -> None:
    assert route_label("vip", 3, quoted=True) == "'vip'"
    assert route_label(None, 3, quoted=True) == "routes[3]"
