"""Performs presses: grant, allow list, once, Mosaic's API, audit, the run's thread."""

from __future__ import annotations

from aiohttp import web

from relay.actions.model import Press

__all__ = ["ACTIONS_KEY", "Actions"]


class Actions:
    """Takes authenticated presses from the inbound endpoints (``accept``) and does the rest in
    the background."""

    def accept(self, press: Press) -> None:
        """Handle ``press`` in a background task; returns at once (Slack wants an answer within
        3 s). Never raises: every outcome is answered to the presser and recorded."""
        raise NotImplementedError


ACTIONS_KEY = web.AppKey("actions", Actions)
"""The relay's ``Actions``, for the inbound endpoints (``request.app[ACTIONS_KEY]``)."""
