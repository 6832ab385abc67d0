"""A command never hangs: SIGTERM ends it within seconds, and so does the death of its
temporary Prefect server (one line says so, and what the run had published)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux signals")

REPO = Path(__file__).resolve().parents[2]

# argv: ready-file, mode. After lifetime.install(), the main thread waits; a SIGTERM
# raises SystemExit there, whose clean-up then hangs (as a flow engine reporting a crash
# to an API that does not answer); "swallow" installs a handler that ignores it instead.
SIGTERM_CHILD = """
import signal, sys, threading, time
from pathlib import Path
from flows.cli import lifetime

lifetime.install()
if sys.argv[2] == "swallow":
    signal.signal(signal.SIGTERM, lambda *a: None)
Path(sys.argv[1]).write_text("ready")
try:
    while True:
        time.sleep(0.1)
finally:
    time.sleep(120)
"""

# argv: workspace, ready-file. Publishes a tiny night, starts the temporary server,
# then runs a flow that waits (until the test kills the server).
SERVER_CHILD = """
import sys, time
from datetime import date
from pathlib import Path

from flows.cli import lifetime
from flows.cli.failure import SEEN
from flows.environment import prepare_environment

ws = Path(sys.argv[1])
prepare_environment(ws)
lifetime.install()
SEEN.update(workspace=ws, loaded=True)

from flows.bench import publish_faults as faults
case = faults.Case(ws, f"sqlite:///{ws}/recpipe.db", "recommendations", "similar_items")
faults.publish(case, "tonight", date(2026, 5, 1), 10, 0)

from prefect import flow

@flow
def night():
    Path(sys.argv[2]).write_text("ready")
    while True:
        time.sleep(0.5)

night()
"""


def _start(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_ready(child: subprocess.Popen[str], ready: Path, limit: float) -> None:
    deadline = time.monotonic() + limit
    while not ready.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            pytest.fail(f"child never got ready: {child.communicate()[1][-2000:]}")
        time.sleep(0.1)


@pytest.mark.parametrize("mode", ["hang", "swallow"])
def test_sigterm_stops_the_command_within_ten_seconds(tmp_path: Path, mode: str) -> None:
    ready = tmp_path / "ready"
    child = _start(SIGTERM_CHILD, str(ready), mode)
    _wait_ready(child, ready, 60)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=30)  # its clean-up alone would take 120 s
    assert child.returncode == 143, err
    assert "recpipe: stopping: SIGTERM received" in err
    assert "stopped by SIGTERM" in err


def test_a_dead_temporary_server_ends_the_run_with_one_line(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    ws = tmp_path / "ws"
    ws.mkdir()
    child = _start(SERVER_CHILD, str(ws), str(ready))
    try:
        _wait_ready(child, ready, 240)
        servers = [
            p
            for p in psutil.Process(child.pid).children(recursive=True)
            if "uvicorn" in " ".join(p.cmdline())
        ]
        assert servers, "no temporary server among the child's processes"
        for server in servers:
            server.kill()
        _, err = child.communicate(timeout=90)  # before the watch, it waited for ever
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 2, err
    lines = [line for line in err.splitlines() if line.startswith("recpipe:")]
    assert len(lines) == 1, err
    assert "the temporary Prefect server" in lines[0] and "exited" in lines[0]
    assert "tables were published" in lines[0]  # tonight's publish finished before it
    assert not any(s.is_running() and s.status() != psutil.STATUS_ZOMBIE for s in servers)
