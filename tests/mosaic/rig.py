"""A store, a router and the shared ingest path for the reconciler and watch tests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from relay.config import load_config
from relay.ingest import Ingest
from relay.metrics import Metrics
from relay.mosaic import MosaicClient, RetryPolicy
from relay.mosaic.settings import MosaicSettings, ReconcileSettings
from relay.routing import Router
from relay.store import SQLiteStore
from tests.conftest import BASE_CONFIG
from tests.fakes.mosaic import DEFAULT_KEY, FakeMosaic

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
AGENT = "123e4567-e89b-12d3-a456-789012345678"
ONE_TRY = RetryPolicy(attempts=1)


@dataclass
class Rig:
    """An opened SQLite store, an ``Ingest`` routing everything to one file channel, a clock."""

    store: SQLiteStore
    router: Router
    settings: MosaicSettings = field(default_factory=MosaicSettings)
    metrics: Metrics = field(default_factory=Metrics)
    now: float = NOW.timestamp()
    notified: list[None] = field(default_factory=list)
    ingest: Ingest = field(init=False)

    def __post_init__(self) -> None:
        self.ingest = Ingest(
            self.store, lambda: self.router, lambda: self.notified.append(None), clock=self.clock
        )

    def clock(self) -> float:
        return self.now

    def current(self) -> MosaicSettings:
        return self.settings

    def use(self, fake: FakeMosaic | None, **changes: Any) -> None:
        """Point the settings at ``fake`` (None: no API key) with ``changes``."""
        key = None if fake is None else SecretStr(DEFAULT_KEY)
        url = "http://127.0.0.1:9" if fake is None else fake.url
        self.settings = MosaicSettings(
            api_key=key, api_url=url, **{"reconcile": ReconcileSettings(), **changes}
        )

    def client(self, settings: MosaicSettings) -> MosaicClient:
        assert settings.api_key is not None
        return MosaicClient(settings.api_key, base_url=settings.api_url, retry=ONE_TRY)

    async def events(self, flag: str | None = None) -> list[dict[str, Any]]:
        """Every stored payload (oldest first), of ``flag`` if given."""
        records = await self.store.list_events(limit=1000)
        bodies = []
        for record in reversed(records):
            full = await self.store.get_event(record.event_id)
            assert full is not None and full.body is not None
            bodies.append(json.loads(full.body))
        return [body for body in bodies if flag is None or body["flag"] == flag]


async def open_rig(tmp_path: Path) -> Rig:
    config_path = tmp_path / "relay.yaml"
    config_path.write_text(BASE_CONFIG)
    router = Router.from_config(load_config(config_path, env={}).config)
    store = SQLiteStore(tmp_path / "relay.db", sync="normal")
    await store.open()
    return Rig(store, router)
