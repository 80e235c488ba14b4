"""A runtime whose channel ``a`` answers as a test says, and jobs for it, on a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

import aiohttp
import pytest

from relay.channels import Limits, Message, MessageRef
from relay.config import LoadedConfig, load_config
from relay.confmodel import RateLimit
from relay.receiver import canonical_json
from relay.runtime import Runtime
from relay.store import Job
from tests.conftest import SECRET

T0 = 1_000_000.0

CONFIG = f"""
auth:
  secrets: ["{SECRET}"]
store:
  url: sqlite:///relay.db
delivery:
  lease: 10s
  max_attempts: 3
  max_age: 1h
  backoff: {{initial: 1s, max: 60s}}
channels:
  a: {{type: file, path: a.jsonl}}
routes:
  - to: [a]
templates:
  seq:
    text: "{{{{ event.seq }}}}"
  broken:
    text: "{{{{ event.missing.deeper }}}}"
"""


class Answering:
    """A channel that answers every send with ``answer`` (raised if an exception)."""

    render_kind: ClassVar[str] = "plain"
    limits: ClassVar[Limits] = Limits()
    default_rate_limit: ClassVar[RateLimit | None] = None

    def __init__(self, name: str) -> None:
        self.name = name
        self.answer: Exception | None = None
        self.sent: list[str] = []

    @property
    def rate_key(self) -> str:
        return f"answering:{self.name}"

    async def start(self, session: aiohttp.ClientSession) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send(self, message: Message) -> MessageRef | None:
        if self.answer is not None:
            raise self.answer
        self.sent.append(message.text)
        return None

    async def verify(self) -> str:
        return "ok"


def make_job(
    *,
    channel: str = "a",
    template: str = "seq",
    attempts: int = 0,
    age: float = 0.0,
    body: bytes | None = None,
) -> Job:
    """A claimed job for event ``seq`` 7, accepted ``age`` seconds before ``T0``."""
    if body is None:
        body = canonical_json(
            {"flag": "RUN_PROGRESS", "agent_id": "agent-1", "run_id": "run-1", "status": "running",
             "seq": 7}
        )  # fmt: skip
    return Job(
        id="1", event_id="e1", run_id="run-1", channel=channel, route="route", template=template,
        mode="post", state="inflight", attempts=attempts, created_at=T0 - age,
        next_attempt_at=T0, last_error=None, body=body, run_started_at=None,
    )  # fmt: skip


@pytest.fixture(scope="session")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> LoadedConfig:
    config = tmp_path_factory.mktemp("delivery") / "relay.yaml"
    config.write_text(CONFIG)
    return load_config(config, env={})


@pytest.fixture
def runtime(loaded: LoadedConfig) -> Runtime:
    built = Runtime.build(loaded)
    built.channels["a"] = Answering("a")
    return built


@pytest.fixture
def worker() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool
