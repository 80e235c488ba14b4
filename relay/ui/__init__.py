"""The operator web UI at ``/ui`` (server-rendered pages) and its JSON API at ``/api/``.

Both exist only when ``server.admin_token`` is set; ``relay.ui.routes.setup_ui`` wires them.
"""
