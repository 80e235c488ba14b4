"""The README's two set-up commands stay true: CI runs the same test command."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    lines = (ROOT / "README.md").read_text().splitlines()
    start = lines.index("```sh")
    end = lines.index("```", start + 1)
    return lines[start + 1 : end]


def test_readme_starts_with_the_two_setup_commands() -> None:
    serve, test = readme_commands()
    assert "relay serve -c relay.yaml.example" in serve
    assert "pytest" in test


def test_ci_runs_the_readme_test_command() -> None:
    _, test = readme_commands()
    pytest_part = test.split("&&")[-1].strip()
    assert pytest_part in (ROOT / ".ci" / "run").read_text()
