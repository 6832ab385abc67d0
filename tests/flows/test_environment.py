"""Quiet by default: a process prepared by ``prepare_environment`` prints the libraries'
warnings but not their chatter; ``verbose=True`` leaves the libraries as they are.

Each case is a real child process (the settings must be in place before the libraries
are imported) that imports TensorFlow, registers an MLflow model twice and runs a Prefect
flow with a task, as a night does.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.conftest import run_command

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import logging, sys
from pathlib import Path

workspace, verbose = Path(sys.argv[1]), sys.argv[2] == "verbose"
from flows.environment import prepare_environment

prepare_environment(workspace, verbose=verbose)

import tensorflow  # noqa: F401  (its shared libraries print while they load)
import mlflow

uri = f"sqlite:///{workspace}/mlflow.db"
mlflow.set_tracking_uri(uri)
mlflow.set_registry_uri(uri)


class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: list[str]) -> list[str]:
        return model_input


with mlflow.start_run():
    info = mlflow.pyfunc.log_model(name="m", python_model=Echo())
mlflow.register_model(info.model_uri, "echo")
mlflow.register_model(info.model_uri, "echo")
logging.getLogger("mlflow").warning("an mlflow warning")

from prefect import flow, get_run_logger, task


@task(task_run_name="step-{x}")
def step(x: int) -> int:
    get_run_logger().info("step info")
    return x


@flow
def night() -> int:
    get_run_logger().warning("a flow warning")
    return step(1)


night()
print("child done", file=sys.stderr)
"""

CHATTER = [
    "oneDNN custom operations are on",
    "absl::InitializeLog",
    "Successfully registered model",
    "already exists. Creating a new version",
    "Created version",
    "Creating initial MLflow database tables",
    "Finished in state Completed()",
    "Starting temporary server",
]
WARNINGS = ["an mlflow warning", "a flow warning", "child done"]


def child_stderr(tmp_path: Path, mode: str) -> str:
    (tmp_path / mode).mkdir()
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "TF_"))}
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"
    done = run_command(
        [sys.executable, str(script), str(tmp_path / mode), mode],
        timeout=600,
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


@pytest.mark.parametrize("mode", ["quiet", "verbose"])
def test_quiet_hides_the_libraries_chatter_and_keeps_warnings(tmp_path: Path, mode: str) -> None:
    stderr = child_stderr(tmp_path, mode)
    for line in WARNINGS:
        assert line in stderr
    shown = [line for line in CHATTER if line in stderr]
    if mode == "quiet":
        assert shown == [], stderr
    else:  # the libraries' defaults: each of them speaks (TensorFlow's oneDNN notice only
        # on CPUs where its oneDNN kernels are on, which a TensorFlow import tells)
        expected = [line for line in CHATTER if line != ONEDNN or _tensorflow_says_onednn()]
        assert shown == expected, stderr


ONEDNN = CHATTER[0]


def _tensorflow_says_onednn() -> bool:
    """Whether a bare ``import tensorflow`` prints the oneDNN notice on this machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    done = run_command([sys.executable, "-c", "import tensorflow"], timeout=300, cwd=ROOT, env=env)
    return ONEDNN in done.stderr
