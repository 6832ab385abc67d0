"""The intraday refresh flow: re-score the users who just acted (tasks/refresh/).

Wiring only: :func:`tasks.refresh.run.run_refresh` does the work, each of its steps a
Prefect task run (read-events, validate-events, read-edges when relations are
configured, score-users, check-output, publish-users); the summary becomes a Markdown
artifact (``recpipe-refresh``) and metrics on the night's MLflow run. Served beside the
nightly by ``recpipe serve`` on its own schedule (``[refresh]`` in the config); never
trains, never moves the champion.
"""

# No `from __future__ import annotations`: Prefect builds the flow's parameter model from
# these annotations, also when it loads this file from a deployment's entrypoint.
import uuid
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.config import PipelineConfig, load_config

FLOW_NAME = "recpipe-refresh"


def _as_task(step_name: str, fn: Any, **kwargs: Any) -> Any:
    """One step of the refresh as a task run (no retries: a failed refresh leaves its
    batch pending, and the next refresh, minutes later, publishes it)."""
    return task(name=step_name, cache_policy=NO_CACHE)(fn)(**kwargs)


@flow(name=FLOW_NAME, log_prints=True)
def refresh(config: PipelineConfig | None = None) -> dict:
    """Re-score the users with new events in the landing folder, for the newest published
    run date, and publish just their rows (tasks/refresh/)."""
    from prefect.runtime import flow_run

    from tasks.refresh.report import log_everywhere
    from tasks.refresh.run import run_refresh

    config = config or load_config()
    logger = get_run_logger()
    run_id = str(flow_run.id or uuid.uuid4())
    out = run_refresh(
        config,
        run_id,
        step=_as_task,
        on_wait=lambda why: logger.info("refresh: %s; waiting for it to finish", why),
    )
    log_everywhere(str(config.workspace), config.tracking.experiment, out, logger)
    logger.info(
        "refresh %s: %s users, %s events, %s s",
        out["status"],
        out.get("users"),
        out.get("events"),
        out.get("seconds"),
    )
    return out
