"""YAML loading that remembers where every value stood, and ``${VAR}`` / ``${file:PATH}``
interpolation.

Interpolation happens in scalars after parsing, so line numbers stay right and an environment value
can never inject YAML. ``${file:/run/secrets/x}`` is the file's text without its final line end
(Docker and Kubernetes secrets), read at every load, so a reload picks up a rotated secret; a
relative path is relative to the config file's folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Located", "YamlSourceError", "interpolate", "load_yaml"]

Path_ = tuple[str | int, ...]
_REFERENCE = re.compile(
    r"\$\{(?:file:(?P<file>[^}]+)|(?P<var>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*?))?)\}"
)
MAX_SECRET_FILE_BYTES = 65_536


class YamlSourceError(Exception):
    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass
class Located:
    """Parsed data plus the line of each path, and the env vars that were not set."""

    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    unset_vars: dict[Path_, str] = field(default_factory=dict)
    file_errors: dict[Path_, str] = field(default_factory=dict)
    """Paths whose ``${file:...}`` could not be read, with why."""

    def line_of(self, path: Path_) -> int | None:
        """The line of ``path`` or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None


def load_yaml(text: str) -> Located:
    """Parse one YAML document (safe types only) and record lines; duplicate keys are errors."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        located = Located(data=None)
        if node is not None:
            located.data = _convert(loader, node, (), located)
        return located
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise YamlSourceError(line, f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise YamlSourceError(None, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()


def _convert(loader: yaml.SafeLoader, node: yaml.Node, path: Path_, out: Located) -> Any:
    out.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) or key is None:
                raise YamlSourceError(key_node.start_mark.line + 1, "a key must be a plain value")
            key = str(key) if not isinstance(key, str) else key
            if key in result:
                raise YamlSourceError(key_node.start_mark.line + 1, f"duplicate key '{key}'")
            child = (*path, key)
            out.lines[child] = key_node.start_mark.line + 1
            result[key] = _convert(loader, value_node, child, out)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_convert(loader, item, (*path, i), out) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def interpolate(
    located: Located, env: Mapping[str, str] | None = None, base_dir: Path | None = None
) -> None:
    """Replace ``${VAR}`` / ``${VAR:-default}`` / ``${file:PATH}`` in every string scalar.

    A scalar that is exactly one unset ``${VAR}`` (no default) becomes None and is recorded in
    ``unset_vars``; inside a longer string an unset variable becomes ''. A file that cannot be
    read makes its scalar None and is recorded in ``file_errors``.
    """
    environ = os.environ if env is None else env
    located.data = _interpolate(located.data, (), environ, located, base_dir or Path.cwd())


def _interpolate(
    value: Any, path: Path_, env: Mapping[str, str], out: Located, base_dir: Path
) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, (*path, k), env, out, base_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*path, i), env, out, base_dir) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value
    whole = _REFERENCE.fullmatch(value)
    if whole and whole["var"] and whole["default"] is None and whole["var"] not in env:
        out.unset_vars[path] = whole["var"]
        return None

    def substitute(found: re.Match[str]) -> str:
        if found["file"]:
            return _read_secret(base_dir / found["file"])
        name, default = found["var"], found["default"]
        got = env.get(name)
        if got is None or (got == "" and default is not None):
            if default is None:
                out.unset_vars[path] = name
                return ""
            return default
        return got

    try:  # one pass: a value read from a file or the environment is never interpolated again
        return _REFERENCE.sub(substitute, value)
    except _SecretFileError as exc:
        out.file_errors[path] = str(exc)
        return None


class _SecretFileError(Exception):
    pass


def _read_secret(file: Path) -> str:
    """A secret file's text without its final line end (what ``echo`` and editors add)."""
    try:
        with file.open("rb") as handle:
            raw = handle.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        raise _SecretFileError(f"cannot read {file}: {exc.strerror or exc}") from None
    if len(raw) > MAX_SECRET_FILE_BYTES:
        raise _SecretFileError(f"{file} is larger than {MAX_SECRET_FILE_BYTES} bytes")
    try:
        return raw.decode("utf-8").removesuffix("\n").removesuffix("\r")
    except UnicodeDecodeError:
        raise _SecretFileError(f"{file} is not UTF-8 text") from None
