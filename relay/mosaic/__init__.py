"""Mosaic's REST API: a client and typed views of its answers."""

from relay.mosaic.client import (
    DEFAULT_BASE_URL,
    MosaicAuthError,
    MosaicClient,
    MosaicError,
    MosaicNotFoundError,
    MosaicResponseError,
    MosaicUnavailableError,
    RetryPolicy,
)
from relay.mosaic.models import Agent, Run, RunPage, RunSummary, WhoAmI

__all__ = [
    "DEFAULT_BASE_URL",
    "Agent",
    "MosaicAuthError",
    "MosaicClient",
    "MosaicError",
    "MosaicNotFoundError",
    "MosaicResponseError",
    "MosaicUnavailableError",
    "RetryPolicy",
    "Run",
    "RunPage",
    "RunSummary",
    "WhoAmI",
]
