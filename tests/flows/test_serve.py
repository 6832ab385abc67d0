"""Scheduling on a real Prefect server (``prefect server start``, started here): ``recpipe
serve`` registers the cron deployment, the server's scheduler plans its runs, ``recpipe
trigger --wait`` runs it now, ``recpipe status`` reads it back, and prefect.yaml deploys.

Everything runs as subprocesses with their own PREFECT_HOME, bounded in time.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.conftest import run_command

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEPLOYMENT = "recpipe-nightly/recpipe-nightly"
RUN_DATE = "2026-03-02"


def wait_for(check: Callable[[], object], seconds: float, what: str) -> object:
    deadline = time.monotonic() + seconds
    while True:
        try:
            value = check()
        except (httpx.HTTPError, OSError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not ready after {seconds} s")
        time.sleep(1)


def clean_env(home: Path, api_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "RECPIPE"))}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory) -> str:
    home = tmp_path_factory.mktemp("prefect-server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    with open(home / "server.log", "w") as log:
        server = subprocess.Popen(
            [
                BIN / "prefect",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-ui",
            ],
            env=clean_env(home, None),
            cwd=home,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: httpx.get(f"{url}/health", timeout=5).status_code == 200, 180, "server")
        yield url
    finally:
        stop(server)


@pytest.fixture(scope="module")
def served(prefect_server, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("served")
    config = root / "recpipe.toml"
    config.write_text(
        "[ingest.demo]\nn_users = 150\nn_items = 100\nmean_interactions = 15\n"
        '[train]\nmodels = ["popularity"]\n[score]\nk = 5\n'
    )
    env = clean_env(root / "client-home", prefect_server)
    base = [str(BIN / "recpipe"), "--workspace", str(root / "ws"), "--config", str(config)]
    with open(root / "serve.log", "w") as log:
        process = subprocess.Popen(
            [*base, "serve", "--timezone", "Europe/Paris"],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deployment = wait_for(
            lambda: (
                httpx.get(f"{prefect_server}/deployments/name/{DEPLOYMENT}", timeout=5)
                .raise_for_status()
                .json()
            ),
            120,
            "served deployment",
        )
        yield {
            "url": prefect_server,
            "env": env,
            "base": base,
            "workspace": root / "ws",
            "deployment": deployment,
            "log": root / "serve.log",
        }
    finally:
        stop(process)


def recpipe(served: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return run_command(
        [*served["base"], *args],
        timeout=timeout,
        cwd=REPO,
        env=served["env"],
    )


def test_serve_refuses_without_a_prefect_server(tmp_path: Path) -> None:
    done = run_command(
        [str(BIN / "recpipe"), "--workspace", str(tmp_path / "ws"), "serve"],
        timeout=120,
        env=clean_env(tmp_path / "empty-home", None),
    )
    assert done.returncode == 2, done.stderr
    assert "PREFECT_API_URL is not set" in done.stderr
    assert "prefect server start" in done.stderr and "Traceback" not in done.stderr


def test_the_served_deployment_has_its_cron_schedule(served) -> None:
    deployment = served["deployment"]
    (schedule,) = deployment["schedules"]
    assert schedule["active"]
    assert schedule["schedule"]["cron"] == "0 2 * * *"
    assert schedule["schedule"]["timezone"] == "Europe/Paris"
    assert deployment["entrypoint"] == "flows/nightly.py:nightly"
    assert deployment["parameters"]["config"]["workspace"] == str(served["workspace"])
    assert deployment["parameters"]["config"]["train"]["models"] == ["popularity"]
    assert deployment["global_concurrency_limit"]["limit"] == 1


def test_the_server_schedules_runs_at_two_in_the_morning(served) -> None:
    body = {
        "deployments": {"id": {"any_": [served["deployment"]["id"]]}},
        "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
    }
    runs = wait_for(
        lambda: httpx.post(f"{served['url']}/flow_runs/filter", json=body, timeout=5).json(),
        90,
        "scheduled runs",
    )
    for run in runs:
        start = datetime.fromisoformat(run["expected_start_time"]).astimezone(
            ZoneInfo("Europe/Paris")
        )
        assert (start.hour, start.minute) == (2, 0)


@pytest.fixture(scope="module")
def triggered(served) -> subprocess.CompletedProcess:
    """One run of the served deployment, triggered now and waited for (the tests that read
    it back need it, whatever order they run in)."""
    done = recpipe(
        served, "trigger", "--run-date", RUN_DATE, "--wait", "--timeout", "400", timeout=500
    )
    assert done.returncode == 0, done.stdout + done.stderr + served["log"].read_text()[-3000:]
    return done


def test_a_triggered_run_completes_and_publishes(served, triggered) -> None:
    from tasks.publishing.stores import read_database_table

    done = triggered
    assert ": Completed" in done.stdout
    flow_run_id = re.search(r"\(([0-9a-f-]{36})\)", done.stdout).group(1)
    partition = served["workspace"] / "tables" / "recommendations" / f"run_date={RUN_DATE}"
    assert partition.is_dir()
    table = read_database_table(
        f"sqlite:///{served['workspace'] / 'recpipe.db'}", "recommendations"
    )
    assert set(table["run_id"]) == {flow_run_id}


def test_status_reads_runs_from_mlflow_and_the_prefect_api(served, triggered) -> None:
    done = recpipe(served, "status")
    assert done.returncode == 0, done.stderr
    assert f"serving run date {RUN_DATE}" in done.stdout
    assert "FINISHED" in done.stdout  # MLflow parent run
    assert re.search(r"next scheduled run 20\d\d-", done.stdout)
    assert "Completed" in done.stdout  # Prefect flow run state


def test_prefect_yaml_deploys_to_a_process_work_pool(prefect_server, tmp_path: Path) -> None:
    # The server is shared with the served deployment, which keeps running for the other
    # tests: the yaml's deployment is deployed under another name (nothing else changes).
    text = (REPO / "prefect.yaml").read_text()
    assert text.count("  - name: recpipe-nightly\n") == 1
    (tmp_path / "prefect.yaml").write_text(
        text.replace("  - name: recpipe-nightly\n", "  - name: recpipe-nightly-yaml\n")
    )
    shutil.copytree(REPO / "flows", tmp_path / "flows", ignore=shutil.ignore_patterns("__py*"))
    env = clean_env(tmp_path / "client-home", prefect_server)
    prefect = str(BIN / "prefect")
    pool = run_command(
        [prefect, "work-pool", "create", "recpipe-process", "--type", "process"],
        timeout=120,
        env=env,
    )
    assert pool.returncode == 0, pool.stdout + pool.stderr
    deploy = run_command(
        [prefect, "--no-prompt", "deploy", "--all"],
        timeout=180,
        cwd=tmp_path,
        env=env,
    )
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    deployment = httpx.get(f"{prefect_server}/deployments/name/{DEPLOYMENT}-yaml", timeout=5).json()
    assert deployment["entrypoint"] == "flows/nightly.py:nightly"
    assert deployment["work_pool_name"] == "recpipe-process"
    assert deployment["schedules"][0]["schedule"]["cron"] == "0 2 * * *"
    assert deployment["pull_steps"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(tmp_path)}}
    ]
    assert deployment["global_concurrency_limit"]["limit"] == 1
