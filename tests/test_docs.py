"""The README's promises: its commands exist, CI runs its test command, the sample config loads."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from digest.cli import main


def readme_commands(repo: Path) -> list[str]:
    text = (repo / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL)
    return [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()
            if line.strip()]


def test_quick_start_is_two_commands(repo: Path) -> None:
    commands = readme_commands(repo)
    assert commands[:2] == [
        "python -m pip install -e . && python run_digest.py send",
        "python -m pip install -e '.[test]' && python -m pytest",
    ]


def test_ci_runs_the_readme_test_command(repo: Path) -> None:
    ci = (repo / ".ci" / "run").read_text(encoding="utf-8")
    test_command = readme_commands(repo)[1]
    assert test_command.replace("pip install", "pip install -q") in ci


def test_every_documented_command_parses(repo: Path) -> None:
    documented = [c for c in readme_commands(repo) if c.startswith("python run_digest.py")]
    assert len(documented) >= 8
    for command in documented:
        args = shlex.split(command.split(">")[0])[2:]
        # --help after the command path proves click knows every word and option before it.
        words = [a for a in args if not a.startswith("-")]
        is_group = isinstance(main.commands[words[0]], click.Group)
        path = words[:2] if is_group else words[:1]
        result = CliRunner().invoke(main, [*path, "--help"])
        assert result.exit_code == 0, (command, result.output)
        options = [a.split("=")[0] for a in args if a.startswith("--")]
        for option in options:
            assert option in result.output, (command, option)


@pytest.mark.parametrize("command", ["build", "preview", "send", "schedule", "worker", "serve",
                                     "status", "subscribers"])
def test_commands_have_help_with_an_example(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output or command == "subscribers"


def test_every_document_the_code_points_to_exists(repo: Path) -> None:
    """Docstrings and comments name files of the repository that exist, and no note kept
    outside it (the research notes are not shipped: cite the standard or the source)."""
    path = re.compile(r"(?<![\w/.:-])((?:digest|templates|tests|bench|content|subscribers)"
                      r"/[\w./-]*\w|[\w-]+\.md)\b")
    missing, outside = [], []
    for source in sorted((repo / "digest").rglob("*.py")):
        text = source.read_text(encoding="utf-8")
        for found in path.finditer(text):
            ref = found.group(1)
            if ref.startswith("digest/") and re.fullmatch(r"digest/\d[\d.]*", ref):
                continue  # a User-Agent's product version, not a path
            if not (repo / ref).exists():
                missing.append(f"{source.relative_to(repo)}: {ref}")
        for found in re.finditer(r"research note|research\b:?|research/", text):
            outside.append(f"{source.relative_to(repo)}: {found.group(0)}")
    assert missing == [] and outside == []
