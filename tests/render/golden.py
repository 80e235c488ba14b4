"""The built-in messages of every kind for every sample (as sent, and with hostile text in every
string), recorded in ``golden_messages.json``: a change to the escaping or cutting code that
should not change a byte of output is checked against it (``test_golden``).

``python -m tests.render.golden`` writes the file again (only when an output change is meant).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from relay.channels.base import Limits
from relay.events import Event
from relay.render import Renderer
from tests.render.helpers import AGENTS, KINDS, LIMITS, sample, sample_names

GOLDEN = Path(__file__).with_name("golden_messages.json")
HOSTILE = (
    " *bold* _it_ ~s~ `code` > quote\n&amp; <!channel> <@U123|x> <https://a.example|b>"
    " @here #general user@mail.example www.example.com https://x.example/a?b=1&c=2|d"
    "\r\n\u2028tab\there  \x00\x1b\x7f\x85\u202e\u2066rtl\u2069 👩‍👩‍👧 🇫🇷 e\u0301 \ud800 ＞ ．com"
)
TIGHT = {
    "plain": Limits(text=60),
    "slack": Limits(text=60, header=20, section=40, blocks=3),
    "telegram": Limits(text=60, caption=30),
    "email": Limits(text=80, subject=20),
    "webhook": Limits(text=60),
    "discord": Limits(text=60, header=20, section=40, blocks=1),
}
_STRUCTURAL = frozenset({"flag", "status", "type", "agent_id", "run_id"})


def hostile(value: Any, key: str = "") -> Any:
    """``value`` with ``HOSTILE`` after every string but the ones that pick a layout."""
    if isinstance(value, str):
        return value if key in _STRUCTURAL else value + HOSTILE
    if isinstance(value, dict):
        return {k: hostile(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [hostile(item, key) for item in value]
    return value


def messages() -> dict[str, Any]:
    """``{"<sample>/<variant>/<kind>/<limits>": message fields}``."""
    agents = {**AGENTS, "0b7e2a10-5c1d-4f3e-9a8b-6c5d4e3f2a1b": "Clip *cutter* @here" + HOSTILE}
    renderer = Renderer({}, agents, run_url="https://mosaic.example/agents/{agent_id}/{run_id}")
    found: dict[str, Any] = {}
    for name in sample_names():
        for variant, payload in (("sent", sample(name)), ("hostile", hostile(sample(name)))):
            for kind in KINDS:
                for size, limits in (("full", LIMITS[kind]), ("tight", TIGHT[kind])):
                    message = renderer.render(
                        kind,
                        None,
                        Event.model_validate(payload),
                        event_id="evt-1",
                        route="failed-runs",
                        channel="team",
                        limits=limits,
                        run_started_at=1_000.0,
                        now=4_725.0,
                    )
                    found[f"{name}/{variant}/{kind}/{size}"] = dataclasses.asdict(message)
    return found


def dump(found: dict[str, Any]) -> str:
    return json.dumps(found, ensure_ascii=True, indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    GOLDEN.write_text(dump(messages()))
