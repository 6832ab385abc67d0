"""The process environment a recpipe command sets before the libraries are imported."""

from __future__ import annotations

import os
from pathlib import Path


def prepare_environment(workspace: Path, temporary_server: bool = True) -> None:
    """Defaults for the libraries, set before they are imported; the user's settings win.

    ``temporary_server=False`` for commands that need a real Prefect server (serve,
    trigger, status): PREFECT_HOME is left alone so the user's profile (and its
    PREFECT_API_URL) is found.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # No usage reporting: nightly batch jobs often run without internet access.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Without a Prefect server configured, Prefect starts a temporary one; keep its
    # database in the workspace and give it time to start on a small machine.
    if (
        temporary_server
        and "PREFECT_API_URL" not in os.environ
        and "PREFECT_HOME" not in os.environ
    ):
        (workspace / "prefect").mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(workspace / "prefect")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    if temporary_server and "PREFECT_API_URL" not in os.environ:
        # That temporary server must not outlive this process, even on kill -9.
        from flows.prefect_server import tie_temporary_server_to_process

        tie_temporary_server_to_process()
