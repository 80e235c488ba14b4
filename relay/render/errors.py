"""The two ways rendering fails: a bad template in the config, or a render that cannot finish."""

from __future__ import annotations

__all__ = ["RenderError", "TemplateConfigError"]


class TemplateConfigError(ValueError):
    """A template does not compile; raised while the config loads, so a bad edit fails early.

    ``key`` says which part of the template failed (``text``, ``email.subject``,
    ``slack[0].text.text``…); ``lineno`` is the line inside that template string.
    """

    def __init__(self, name: str, key: str, message: str, lineno: int | None = None) -> None:
        where = f" line {lineno}" if lineno else ""
        super().__init__(f"template '{name}', {key}{where}: {message}")
        self.name = name
        self.key = key
        self.message = message
        self.lineno = lineno


class RenderError(Exception):
    """A template failed while rendering one event (undefined variable, sandbox violation,
    invalid JSON body…). The delivery is dead-lettered with this text."""
