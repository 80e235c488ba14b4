"""Rendering: (event, template, channel kind, limits) -> ``Message``; channels only transport.

Templates are sandboxed Jinja2, compiled when the config loads. Escaping and length limits for
every markup live in ``relay.render.limits``; the template variables are documented in
``relay.render.context``.
"""

from relay.render.environment import check_syntax
from relay.render.errors import RenderError, TemplateConfigError
from relay.render.renderer import RENDER_KINDS, Renderer
from relay.render.settings import EmailTemplate, SlackTemplate, TemplateSettings

__all__ = [
    "RENDER_KINDS",
    "EmailTemplate",
    "RenderError",
    "Renderer",
    "SlackTemplate",
    "TemplateConfigError",
    "TemplateSettings",
    "check_syntax",
]
