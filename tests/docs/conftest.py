"""Shared by the documentation tests: one small demo workspace per session, and every
``run`` block of the README and the docs run in it once, in a fixed order."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.docs.blocks import REPO, Block, runnable_blocks

RUN_DATE = "2026-11-28"  # the date the examples name
DEMO_NIGHT = [
    "run",
    "--run-date",
    RUN_DATE,
    "--demo-users",
    "150",
    "--models",
    "popularity,ease",
    "--k",
    "5",
]
BLOCK_TIMEOUT = 300


@dataclass
class Outcome:
    returncode: int
    output: str
    seconds: float


OUTCOMES: dict[str, Outcome] = {}


def recpipe_script() -> list[str]:
    """The installed console script when there is one, else ``python -m flows.cli``."""
    script = Path(sys.executable).parent / "recpipe"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "flows.cli"]


def block_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    # the examples say which settings and which MLflow store they use (MLflow's
    # set_tracking_uri / set_registry_uri export these to the environment of this process)
    for name in [n for n in env if n.startswith("RECPIPE")]:
        env.pop(name)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(name, None)
    return env


WORKSPACE_SECONDS: list[float] = []


@pytest.fixture(scope="session")
def docs_workspace(tmp_path_factory) -> Path:
    """A folder holding ``recpipe-home`` (one demo night of 150 users, popularity and EASE,
    k = 5, on the run date the examples name) and ``.venv/bin/recpipe``, as a clone has."""
    root = tmp_path_factory.mktemp("docs-demo")
    launcher = root / ".venv" / "bin" / "recpipe"
    launcher.parent.mkdir(parents=True)
    command = " ".join(f'"{word}"' for word in recpipe_script())
    launcher.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
    launcher.chmod(0o755)
    start = time.monotonic()
    done = subprocess.run(
        [str(launcher), *DEMO_NIGHT],
        cwd=root,
        env=block_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    WORKSPACE_SECONDS.append(time.monotonic() - start)
    return root


def run_block(block: Block, root: Path) -> Outcome:
    """``block`` run as written in ``root``: a shell script, a Python program, or a TOML
    configuration file loaded as ``recpipe --config`` would."""
    start = time.monotonic()
    if block.language == "toml":
        from tasks.config import load_config
        from tasks.errors import ConfigError

        path = root / "block.toml"
        path.write_text(block.code)
        try:
            load_config(path, environ={})
            code, output = 0, ""
        except (ConfigError, ValueError) as exc:  # the block's error is the test's message
            code, output = 1, f"{type(exc).__name__}: {exc}"
    else:
        args = ["bash", "-e", "-c", block.code]
        if block.language == "python":
            args = [sys.executable, "-c", block.code]
        done = subprocess.run(
            args,
            cwd=root,
            env=block_env(),
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
            check=False,
        )
        code, output = done.returncode, done.stdout[-4000:] + done.stderr[-4000:]
    return Outcome(code, output, time.monotonic() - start)


@pytest.fixture(scope="session")
def block_outcomes(docs_workspace: Path) -> dict[str, Outcome]:
    """Every ``run`` block's outcome: the blocks that only read the workspace first, then
    the ones that change it, each group in document order."""
    to_run = [b for b in runnable_blocks() if b.action == "run"]
    for block in sorted(to_run, key=lambda b: b.writes):  # stable: document order kept
        OUTCOMES[block.id] = run_block(block, docs_workspace)
    return OUTCOMES


def pytest_terminal_summary(terminalreporter) -> None:
    if not OUTCOMES:
        return
    blocks = runnable_blocks()
    skipped: dict[str, int] = {}
    for block in blocks:
        if block.action == "skip":
            skipped[block.note] = skipped.get(block.note, 0) + 1
    seconds = sum(outcome.seconds for outcome in OUTCOMES.values())
    failed = sum(outcome.returncode != 0 for outcome in OUTCOMES.values())
    night = f", after a {WORKSPACE_SECONDS[0]:.1f} s demo night" if WORKSPACE_SECONDS else ""
    terminalreporter.write_line(
        f"docs code blocks: {len(OUTCOMES)} ran in {seconds:.1f} s{night} ({failed} failed), "
        f"{sum(skipped.values())} skipped"
    )
    for block_id, outcome in OUTCOMES.items():
        terminalreporter.write_line(f"  ran {outcome.seconds:6.1f} s: {block_id}")
    for reason, count in sorted(skipped.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"  skipped {count:2d}: {reason}")
