"""Every `exit-verl` command README.md and docs/ show parses, and its settings load."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from exit_verl.cli import _settings, build_parser

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> Iterator[tuple[str, str]]:
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        for line in text.splitlines():  # code blocks
            if line.startswith("exit-verl "):
                yield path.name, line.split("#")[0].strip()
        for span in re.findall(r"`(exit-verl [^`]+)`", text.replace("\n", " ")):  # inline
            if len(span.split()) > 2:  # a bare `exit-verl eval` names the command
                yield path.name, " ".join(span.split())


COMMANDS = sorted(set(_commands()))


def test_the_docs_show_commands() -> None:
    assert {"demo", "eval", "compare"} <= {cmd.split()[1] for _, cmd in COMMANDS}


@pytest.mark.parametrize(("doc", "command"), COMMANDS)
def test_a_documented_command_parses(doc: str, command: str, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # --config paths are given from the repository's root
    try:
        args = build_parser().parse_args(shlex.split(command)[1:])
    except SystemExit:
        pytest.fail(f"{doc}: `{command}` does not parse")
    if args.command in ("demo", "compare"):
        _settings(args)  # ValueError / KeyError on an unknown or bad setting
