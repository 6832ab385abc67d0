"""Prefect's temporary server dies with the recpipe process that started it, even on kill -9.

A real child process takes the path ``recpipe run`` takes (``prepare_environment``, then
Prefect starts its temporary server on first use); the test finds the server among the
child's processes, kills the child with SIGKILL and waits for the server to be gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only"
)

REPO = Path(__file__).resolve().parents[2]

# argv: workspace, ready-file. The server is started from a short-lived thread first:
# PDEATHSIG follows the thread that forked, and that thread's end must not kill it.
CHILD = """
import sys, threading
from pathlib import Path

from flows.environment import prepare_environment

prepare_environment(Path(sys.argv[1]))

from prefect import flow
from prefect.client.orchestration import get_client

failed = []

def hello():
    try:
        with get_client(sync_client=True) as client:
            client.hello()
    except Exception as exc:
        failed.append(exc)

starter = threading.Thread(target=hello)
starter.start()
starter.join()
if failed:
    raise failed[0]

@flow
def trivial():
    return 1

assert trivial() == 1
Path(sys.argv[2]).write_text("ready")
sys.stdin.read()  # until killed (or the test goes away and closes stdin)
"""

STARTUP_SECONDS = 240  # the server may take minutes to start on a busy 2-core machine
DEATH_SECONDS = 20


def _is_server(process: psutil.Process) -> bool:
    try:
        return "prefect.server.api.server:create_app" in process.cmdline()
    except psutil.Error:
        return False


def _gone(process: psutil.Process) -> bool:
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_temporary_server_dies_when_the_cli_process_is_killed(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_PROFILES_PATH")
    }
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"
    env["PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"] = "true"
    ready = tmp_path / "ready"
    with open(tmp_path / "child.log", "wb") as log:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path / "workspace"), str(ready)],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    servers: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not ready.exists():
            assert child.poll() is None, (
                f"the child exited with {child.returncode}:\n"
                + (tmp_path / "child.log").read_text(errors="replace")[-3000:]
            )
            assert time.monotonic() < deadline, "the child's flow did not finish in time"
            time.sleep(0.2)
        servers = [p for p in psutil.Process(child.pid).children(recursive=True) if _is_server(p)]
        assert len(servers) == 1, f"expected one temporary server, found {servers}"
        server = servers[0]

        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        killed = time.monotonic()
        while not _gone(server) and time.monotonic() - killed < DEATH_SECONDS:
            time.sleep(0.05)
        seconds = time.monotonic() - killed
        assert _gone(server), (
            f"the temporary server (pid {server.pid}) still runs {seconds:.0f} s after "
            "its parent was killed with SIGKILL"
        )
        print(f"temporary server gone {seconds:.3f} s after kill -9 of its parent")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for server in servers:  # a failed run must not leave a 225 MB orphan behind
            if not _gone(server):
                server.kill()
