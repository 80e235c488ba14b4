"""Wires the UI's pages and the JSON API into the relay's app."""

from __future__ import annotations

from aiohttp import web

from relay.ui import actions, overview
from relay.ui.api import setup_api
from relay.ui.pages import add_page_routes
from relay.ui.runs import add_routes as add_run_routes
from relay.ui.state import UI, UiState

__all__ = ["setup_ui"]


def setup_ui(app: web.Application, state: UiState) -> None:
    """``/ui`` and ``/api/``; both answer 404 while no ``server.admin_token`` is configured."""
    app[UI] = state
    add_page_routes(app)
    overview.add_routes(app)
    add_run_routes(app)
    actions.add_routes(app)
    setup_api(app)
