"""The shape of the package: no import cycles, and one composition root (``relay.app``) that only
the command line imports.

Every import counts: at module level, inside a function and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import graphlib
import textwrap
from pathlib import Path

import relay

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
