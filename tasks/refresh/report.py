"""A refresh's summary: a Prefect artifact and metrics on the night's MLflow run.

Metrics on the nightly parent run of the refreshed date (``nightly-YYYY-MM-DD``), one
point per refresh (step = the refresh's Unix time): ``refresh.events``,
``refresh.users``, ``refresh.rows``, ``refresh.published_seconds`` (start to published),
``refresh.seconds`` (with the Data Docs built after) and
``refresh.arrival_to_published_seconds`` (from the newest file's arrival in the landing
folder to its users' rows being published).
"""

from __future__ import annotations

import time
from typing import Any

ARTIFACT_KEY = "recpipe-refresh"


def summary_markdown(out: dict) -> str:
    rows = [
        ("status", out.get("status")),
        ("run date", out.get("run_date")),
        ("files read", len(out.get("files") or [])),
        ("new events", out.get("events")),
        ("validation", (out.get("validation") or {}).get("accounting")),
        ("users refreshed", out.get("users") if out.get("status") == "published" else 0),
        ("rows published", out.get("rows")),
        ("users by strategy", out.get("users_by_strategy")),
        ("model", f"{out.get('model')} v{out.get('version')}" if out.get("model") else None),
        ("seconds (start to published)", out.get("published_seconds")),
        ("seconds (with the Data Docs)", out.get("seconds")),
        ("seconds from newest arrival to published", out.get("arrival_to_published_seconds")),
        ("reason", out.get("reason")),
    ]
    lines = ["# recpipe refresh", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows if v is not None]
    return "\n".join(lines) + "\n"


def publish_artifact(out: dict) -> bool:
    """The summary as a Markdown artifact; only inside a flow or task run."""
    from prefect.context import FlowRunContext, TaskRunContext

    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        return False
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(
        key=ARTIFACT_KEY, markdown=summary_markdown(out), description="recpipe refresh"
    )
    return True


def metrics_of(out: dict) -> dict[str, float]:
    published = out.get("status") == "published"
    values = {
        "refresh.events": out.get("events") or 0,
        "refresh.users": out.get("users") if published else 0,
        "refresh.rows": out.get("rows") or 0,
        "refresh.seconds": out.get("seconds"),
        "refresh.published_seconds": out.get("published_seconds"),
        "refresh.arrival_to_published_seconds": out.get("arrival_to_published_seconds"),
    }
    return {k: float(v) for k, v in values.items() if v is not None}


def log_to_night(workspace_root: str, experiment: str, out: dict) -> str | None:
    """The refresh's metrics on the night's MLflow parent run; its id (None: no such run)."""
    from tasks import tracking
    from tasks.storage.workspace import Workspace

    if not out.get("run_date"):
        return None
    client = tracking.client_for(Workspace.at(workspace_root))
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.run_date = '{out['run_date']}' and "
        f"attributes.run_name = 'nightly-{out['run_date']}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        return None
    run_id = runs[0].info.run_id
    tracking.log_metrics(client, run_id, metrics_of(out), step=int(time.time()))
    return run_id


def log_everywhere(workspace_root: str, experiment: str, out: dict, logger: Any) -> None:
    """Artifact and metrics; a tracking failure is logged, never raised (the rows are
    published by then)."""
    try:
        out["mlflow_run_id"] = log_to_night(workspace_root, experiment, out)
    except Exception as exc:  # noqa: BLE001 - monitoring must not fail a published refresh
        logger.warning("refresh: could not log metrics to MLflow: %s", exc)
    out["artifact"] = publish_artifact(out)
