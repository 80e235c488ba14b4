"""The shape of the package: no import cycles, one composition root (``relay.app``) that only
the command line imports, and no client library loaded for a channel type or store the config
does not use.

Every import counts: at module level, inside a function and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import graphlib
import json
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import pytest

import relay
from relay.channels import REGISTRY

PACKAGE = Path(relay.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(name: str, source: str, known: set[str], *, package: bool = False) -> set[str]:
    """The modules of ``known`` that module ``name`` imports anywhere in its ``source``."""
    home = name if package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = home.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            # ``from relay import app`` imports the module relay.app, ``from relay.app import X``
            # the module relay.app too.
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {module for module in found if module in known and module != name}


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
    known = set(paths)
    return {
        name: imported(name, path.read_text(), known, package=path.name == "__init__.py")
        for name, path in paths.items()
    }


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def test_the_graph_sees_every_kind_of_import() -> None:
    source = textwrap.dedent(
        """
        from typing import TYPE_CHECKING
        import relay.a
        from relay import b
        from relay.c import name
        from . import d
        from .e import name
        from .. import f

        if TYPE_CHECKING:
            from relay.g import name

        def later() -> None:
            from relay.h import name
        """
    )
    known = {f"relay.{letter}" for letter in "abcdefgh"} | {"relay.ui.d", "relay.ui.e"}
    found = imported("relay.ui.pages", source, known)
    assert found == {"relay.a", "relay.b", "relay.c", "relay.ui.d", "relay.ui.e", "relay.f",
                     "relay.g", "relay.h"}  # fmt: skip
    assert imported("relay.ui", "from . import d", known, package=True) == {"relay.ui.d"}


def test_the_cycle_check_finds_a_cycle() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) is not None
    assert cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_module_of_relay_imports_itself_through_others() -> None:
    found = cycle(import_graph())
    assert found is None, f"import cycle: {' -> '.join(found or [])}"


def test_only_the_command_line_imports_the_app() -> None:
    graph = import_graph()
    assert "relay.app" in graph
    assert sorted(name for name, imports in graph.items() if "relay.app" in imports) == [
        "relay.cli"
    ]


CLIENT_LIBRARIES = ("telegram", "slack_sdk", "aiosmtplib", "redis")

PROBE = """
import json, sys

LIBRARIES = {libraries!r}

def loaded():
    return sorted(name for name in LIBRARIES if name in sys.modules)

from relay.cli import load

config = load(sys.argv[1])
checked = loaded()
from relay.app import build_app

build_app(config, check_channels=False, warn=False)
print(json.dumps({{"checked": checked, "built": loaded()}}))
"""

CONFIG = """
auth:
  secrets: ["s3cret-for-tests"]
store:
  url: {store}
channels:
  archive:
    type: file
    path: deliveries.jsonl
  hook:
    type: webhook
    url: http://127.0.0.1:9/hook
{extra}
routes:
  - name: all
    to: [{to}]
"""

EXTRA_CHANNELS = {
    "telegram": "  extra:\n    type: telegram\n    token: '123456:ABC-DEF'\n    chat_id: 42",
    "slack_sdk": "  extra:\n    type: slack\n    webhook_url: http://127.0.0.1:9/services/T/B/X",
    "aiosmtplib": "  extra:\n    type: email\n    host: 127.0.0.1\n    from: relay@example.com\n"
    "    to: [ops@example.com]",
}


def libraries_loaded(tmp_path: Path, config: str) -> dict[str, list[str]]:
    """The client libraries a fresh ``python`` has loaded once the config is checked
    (``checked``) and once the app is built from it, channels and store (``built``)."""
    path = tmp_path / "relay.yaml"
    path.write_text(config)
    probe = PROBE.format(libraries=CLIENT_LIBRARIES)
    done = subprocess.run(
        [sys.executable, "-c", probe, str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, list[str]] = json.loads(done.stdout.splitlines()[-1])
    return found


def test_a_relay_loads_no_client_library_its_config_does_not_use(tmp_path: Path) -> None:
    config = CONFIG.format(store="sqlite:///relay.db", extra="", to="archive, hook")
    assert libraries_loaded(tmp_path, config) == {"checked": [], "built": []}


@pytest.mark.parametrize("library", sorted(EXTRA_CHANNELS))
def test_a_channel_type_loads_its_library_when_a_channel_is_built(
    tmp_path: Path, library: str
) -> None:
    config = CONFIG.format(store="sqlite:///relay.db", extra=EXTRA_CHANNELS[library], to="extra")
    assert libraries_loaded(tmp_path, config) == {"checked": [], "built": [library]}


def test_a_redis_store_loads_redis_when_the_app_is_built(tmp_path: Path) -> None:
    config = CONFIG.format(store="redis://127.0.0.1:1/0", extra="", to="archive")
    assert libraries_loaded(tmp_path, config) == {"checked": [], "built": ["redis"]}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_a_channel_type_names_the_class_built_from_its_settings(name: str) -> None:
    kind = REGISTRY[name]
    assert typing.get_args(kind.settings.model_fields["type"].annotation) == (name,)
    assert typing.get_type_hints(kind.factory.__init__)["settings"] is kind.settings
