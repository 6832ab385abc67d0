"""Every ``recpipe ...`` command line in the code blocks of the README and the docs names a
real command with real options, and ``recpipe <command> --help`` answers; ``--help``
imports nothing heavy."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from tests.conftest import run_command
from tests.docs.blocks import REPO, all_blocks

GLOBAL_WITH_VALUE = {"--workspace", "--config"}
COMMAND_LINE = re.compile(r"(?:^(?:\$ )?|\.venv/bin/)recpipe (.*)")


def documented_commands() -> list[list[str]]:
    """The words after ``recpipe`` on each command line of every code block of the README
    and the docs, run or not (continuation lines joined, comments dropped)."""
    commands = []
    for block in all_blocks():
        pending = ""
        for line in block.code.splitlines():
            line = pending + line
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            pending = ""
            found = COMMAND_LINE.search(line)
            if found:
                words = shlex.split(found.group(1), comments=True)
                commands.append([w.strip("[]") for w in words])
    return commands


def resolve(words: list[str]) -> tuple[list[str], object, list[str]]:
    """The command path of ``words`` (global options skipped), its Click command and the
    words after the path."""
    from typer.main import get_command

    from flows.cli import app

    command, path, rest = get_command(app), [], list(words)
    while rest and rest[0].startswith("-"):  # global options come before the command
        option = rest.pop(0)
        if option in GLOBAL_WITH_VALUE:
            rest.pop(0)
    while hasattr(command, "commands"):  # a group: the next word is one of its commands
        assert rest, f"'recpipe {' '.join(words)}': {path or 'recpipe'} needs a command"
        name = rest.pop(0)
        assert name in command.commands, (
            f"'recpipe {' '.join(words)}': no command {name!r} in 'recpipe {' '.join(path)}'; "
            f"known: {sorted(command.commands)}"
        )
        command = command.commands[name]
        path.append(name)
    return path, command, rest


COMMANDS = documented_commands()
PATHS = sorted({tuple(resolve(words)[0]) for words in COMMANDS})


def test_the_documents_have_command_lines() -> None:
    assert len(COMMANDS) >= 30
    assert ("recs", "rollback") in PATHS and ("run",) in PATHS


@pytest.mark.parametrize("words", COMMANDS, ids=lambda w: " ".join(w)[:60])
def test_every_option_of_a_documented_command_exists(words: list[str]) -> None:
    _, command, rest = resolve(words)
    known = {opt for param in command.params for opt in param.opts}
    unknown = [w for w in rest if w.startswith("--") and w not in known]
    assert not unknown, f"'recpipe {' '.join(words)}': unknown options {unknown}"


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_help_of_every_documented_command(path: tuple[str, ...]) -> None:
    done = run_command(
        [*recpipe(), *path, "--help"],
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"recpipe {' '.join(path)}" in done.stdout  # the usage line


def test_help_imports_nothing_heavy() -> None:
    heavy = ["prefect", "pandas", "mlflow", "tensorflow", "great_expectations", "tasks.config"]
    code = (
        "import sys\n"
        "from flows.cli import main\n"
        "codes = [main(['--help']), main(['run', '--help']), main(['model', 'list', '--help'])]\n"
        f"loaded = [m for m in {heavy!r} if m in sys.modules]\n"
        "print('LOADED', loaded, codes, file=sys.stderr)\n"
        "sys.exit(1 if loaded or any(codes) else 0)\n"
    )
    done = run_command(
        [sys.executable, "-c", code],
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr


def recpipe() -> list[str]:
    """The installed console script when there is one, else ``python -m flows.cli``."""
    script = Path(sys.executable).parent / "recpipe"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "flows.cli"]
