"""What Prefect's UI shows of a night: a PNG of the flow run's page and a check of it.

    python -m flows.bench.prefect_screenshot --workspace W [--out shot.png]

Starts ``prefect server start`` on 127.0.0.1 (a free port, its own ``PREFECT_HOME`` in a
temporary folder, its UI pointed at that port's API), runs a small demo night into
``W`` against it (``recpipe --workspace W run --demo-users 150 --demo-items 100 --models
popularity,ease``), opens the flow run's page (``/runs/flow-run/<id>``) in headless
Chromium at 1366x900 with no network beyond this machine, saves a screenshot, and checks
that the page names the run's flow and says it completed. Exits 0 when it does, 1 when
not, 2 when Chromium is missing. It takes a minute or two: the server starts in about
20 s, the night in about 30 s.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from flows.bench.mlflow_screenshot import free_port
from flows.bench.screenshot_chromium import Page, find_chromium

DEMO = ["--demo-users", "150", "--demo-items", "100", "--models", "popularity,ease"]
FLOW_RUN_ID = re.compile(r"flow run ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


def start_server(home: Path, port: int, log: Path) -> subprocess.Popen:
    """``prefect server start`` in a process group of its own, answering on ``port``."""
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_UI_API_URL": api,  # the UI calls this API (default: port 4200)
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    command = [sys.executable, "-m", "prefect", "server", "start"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prefect server exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=2) as response:
                if response.status == 200:
                    return process
        except OSError:
            time.sleep(1.0)
    stop(process)
    raise RuntimeError(f"prefect server did not answer on {api} within 180 s")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL, to the group ``start_server`` made."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)


def run_night(workspace: Path, api: str, home: Path) -> str:
    """A demo night into ``workspace`` on the server at ``api``; its flow run's id."""
    env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_HOME": str(home)}
    command = [sys.executable, "-m", "flows.cli", "--workspace", str(workspace), "run", *DEMO]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    found = FLOW_RUN_ID.findall(done.stdout + done.stderr)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"the night failed (exit {done.returncode}):\n{done.stdout[-3000:]}")
    return found[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.bench.prefect_screenshot",
        description="Run a demo night on a Prefect server and screenshot its flow run page.",
    )
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--out", type=Path, help="PNG path (default: <workspace>/prefect.png)")
    args = parser.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        print("no Chromium on PATH; install it: apt-get update && apt-get install -y chromium")
        return 2
    png = (args.out or args.workspace / "prefect.png").resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="recpipe-prefect-") as home:
        server = start_server(Path(home), port, png.with_suffix(".server.log"))
        try:
            run_id = run_night(args.workspace, f"http://127.0.0.1:{port}/api", Path(home))
            url = f"http://127.0.0.1:{port}/runs/flow-run/{run_id}"
            with Page(chromium, url, size=(1366, 900)) as page:
                shown = page.wait_for(
                    "document.body.innerText.includes('recpipe-nightly') && "
                    "document.body.innerText.includes('Completed')",
                    timeout=90,
                )
                time.sleep(3.0)  # the run's graph draws after its data arrives
                page.screenshot(png)
        finally:
            stop(server)
    print(f"page        {url}")
    print(f"screenshot  {png}")
    if not shown:
        print("FAIL: the flow run page does not show flow 'recpipe-nightly' as Completed")
        return 1
    print("OK: the flow run page shows recpipe-nightly, Completed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
