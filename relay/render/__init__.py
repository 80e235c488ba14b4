"""Rendering: (event, template, channel kind, limits) -> ``Message``; channels only transport.

Templates are sandboxed Jinja2, compiled when the config loads. Each kind of output (plain,
Slack, Telegram, email, webhook) is a module in ``relay.render.kinds`` with its markup, limits,
built-in templates and card replies; the escaping and cutting primitives they use live in
``relay.render.limits``; the template variables are documented in ``relay.render.context``.
"""

from relay.render.errors import RenderError, TemplateConfigError
from relay.render.kinds import REGISTRY as KINDS
from relay.render.kinds import RenderKind, Reply
from relay.render.renderer import Renderer, check_syntax, render_reply
from relay.render.settings import EmailTemplate, SlackTemplate, TemplateSettings

__all__ = [
    "KINDS",
    "EmailTemplate",
    "RenderError",
    "RenderKind",
    "Renderer",
    "Reply",
    "SlackTemplate",
    "TemplateConfigError",
    "TemplateSettings",
    "check_syntax",
    "render_reply",
]
