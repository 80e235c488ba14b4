"""The ``mosaic:`` section of relay.yaml: Mosaic's API for reconciliation, stale runs, agent names
and run links. Without ``api_key`` the API is not used (run links and the stale-run watch from the
relay's own knowledge still work)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, SecretStr, field_validator

from relay.confmodel import Duration, StrictModel, off

__all__ = ["DEFAULT_API_URL", "MosaicSettings", "ReconcileSettings"]

DEFAULT_API_URL = "https://api.mosaic.so"
RUN_URL_FIELDS = ("run_id", "agent_id")


class ReconcileSettings(StrictModel):
    interval: Duration = Field(300.0, gt=0)
    """How often the relay asks Mosaic for the runs it may have missed."""
    lookback: Duration = Field(86400.0, gt=0)
    """How far back each pass looks (by the run's creation time)."""


class MosaicSettings(StrictModel):
    api_key: SecretStr | None = None
    """An API key (``mk_…``); unset: the API is not used."""
    api_url: str = DEFAULT_API_URL
    reconcile: Annotated[ReconcileSettings | Literal["off"], BeforeValidator(off)] = (
        ReconcileSettings()
    )
    stale_after: Annotated[Duration | Literal["off"], BeforeValidator(off)] = 7200.0
    """A run with no news for this long is checked (or reported stale); ``off`` turns it off."""
    agent_names: bool = True
    """Resolve agent display names through the API (``agents:`` in relay.yaml still wins)."""
    run_url: str | None = None
    """A link to a run, e.g. ``https://edit.mosaic.so/runs/{run_id}`` (``{run_id}``,
    ``{agent_id}``)."""

    @field_validator("api_key")
    @classmethod
    def _looks_like_a_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("mk_"):
            raise ValueError("a Mosaic API key starts with 'mk_'")
        return value

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("run_url")
    @classmethod
    def _run_url_template(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        try:
            value.format(**{name: "x" for name in RUN_URL_FIELDS})
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"may use only {{run_id}} and {{agent_id}} (not {exc})") from None
        return value

    @property
    def api_enabled(self) -> bool:
        return self.api_key is not None
