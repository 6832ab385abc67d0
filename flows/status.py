"""``recpipe status``: what the table serves, what runs now, the last runs and their states,
and whether the schedule runs (the CLI, flows/cli/operate.py, prints it).

Read from the database (the table's newest run date), the run locks (runs in progress),
the MLflow parent runs of the workspace and, when PREFECT_API_URL is set, the Prefect API
(flow runs, the next scheduled one, the deployment: paused or served now).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flows.operate import FLOW_NAME
from tasks.config import PipelineConfig


def table_status(url: str, table: str) -> dict:
    """The published table's newest run date, its rows, and how many dates it holds."""
    import sqlalchemy as sa

    from tasks.storage.database import make_engine

    sqlite_file = sa.engine.make_url(url).database if url.startswith("sqlite") else None
    if sqlite_file and not Path(sqlite_file).is_file():
        return {"exists": False}
    engine = make_engine(url)
    try:
        if not sa.inspect(engine).has_table(table):
            return {"exists": False}
        with engine.connect() as conn:
            quoted = engine.dialect.identifier_preparer.quote(table)
            latest, dates = conn.execute(
                sa.text(f"SELECT MAX(run_date), COUNT(DISTINCT run_date) FROM {quoted}")
            ).one()
            rows = conn.execute(
                sa.text(
                    f"SELECT COUNT(*) FROM {quoted} WHERE run_date = (SELECT MAX(run_date) "
                    f"FROM {quoted})"
                )
            ).scalar()
        return {
            "exists": True,
            "latest": str(latest) if latest else None,
            "rows": rows,
            "dates": dates,
        }
    finally:
        engine.dispose()


def mlflow_runs(config: PipelineConfig, limit: int) -> list[dict]:
    """The last nightly parent runs, newest first."""
    from tasks import tracking
    from tasks.storage.workspace import Workspace

    if not (config.workspace / "mlflow" / "mlflow.db").is_file():
        return []
    client = tracking.client_for(Workspace(config.workspace))
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string="attributes.run_name LIKE 'nightly-%'",
        order_by=["attributes.start_time DESC"],
        max_results=limit,
    )
    out = []
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        start, end = run.info.start_time, run.info.end_time
        out.append(
            {
                "run_date": tags.get("run_date", run.info.run_name.removeprefix("nightly-")),
                "status": run.info.status,
                "started": datetime.fromtimestamp(start / 1000, UTC).strftime("%Y-%m-%d %H:%M")
                if start
                else "",
                # the night's own clock (from its lock to its summary), as its summary says;
                # the MLflow run starts after the lock and the ingest
                "seconds": (
                    round(metrics["total_seconds"], 1)
                    if "total_seconds" in metrics
                    else round((end - start) / 1000)
                    if start and end
                    else None
                ),
                "failed_stage": tags.get("recpipe.failed_stage", ""),
                "error": tags.get("recpipe.error", ""),
                "decision": tags.get("promotion.decision", ""),
                "champion_outcome": tags.get("recpipe.champion_outcome", ""),
                "cached": tags.get("recpipe.cached_stages", ""),
                "rows": metrics.get("published.rows"),
                "jaccard": metrics.get("monitor.mean_jaccard"),
                "coverage": metrics.get("monitor.coverage"),
                "flow_run_id": tags.get("prefect.flow_run_id", ""),
            }
        )
    return out


def prefect_runs(limit: int, deployment: str) -> dict:
    """Last flow runs and the next scheduled one from the Prefect API, when configured."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        return {"configured": False}
    try:
        with get_client(sync_client=True) as client:
            if client.api_healthcheck() is not None:
                return {"configured": True, "reachable": False, "url": url}
            flows = FlowFilter(name=FlowFilterName(any_=[FLOW_NAME]))
            runs = client.read_flow_runs(
                flow_filter=flows, sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=limit * 3
            )
            runs = [r for r in runs if r.state and r.state.type != StateType.SCHEDULED][:limit]
            upcoming = client.read_flow_runs(
                flow_filter=flows,
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(
                        type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])
                    )
                ),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                limit=1,
            )
            schedule = deployment_schedule(client, deployment)
    except Exception as exc:  # noqa: BLE001 - status must answer whatever the server does
        return {"configured": True, "reachable": False, "url": url, "error": str(exc)}
    next_start = upcoming[0].expected_start_time if upcoming else None  # None: not known
    return {
        "configured": True,
        "reachable": True,
        "url": url,
        "runs": [
            {
                "name": r.name,
                "id": str(r.id),
                "state": r.state.name if r.state else "",
                "start": r.start_time.strftime("%Y-%m-%d %H:%M") if r.start_time else "",
                "run_date": (r.parameters or {}).get("run_date") or "",
                "message": (r.state.message or "") if r.state else "",
            }
            for r in runs
        ],
        "next": next_start.isoformat() if next_start is not None else None,
        "schedule": schedule,
    }


def deployment_schedule(client: Any, deployment: str) -> dict:
    """Whether deployment ``recpipe-nightly/<deployment>`` exists, is paused (``serve``
    pauses it when it stops; the UI can too) and is served now (a process polls it)."""
    from prefect.exceptions import ObjectNotFound

    name = f"{FLOW_NAME}/{deployment}"
    try:
        found = client.read_deployment_by_name(name)
    except ObjectNotFound:
        return {"name": name, "exists": False}
    schedules = [
        {
            "active": s.active,
            "cron": getattr(s.schedule, "cron", None),
            "timezone": getattr(s.schedule, "timezone", None),
        }
        for s in found.schedules or []
    ]
    status = getattr(found.status, "value", found.status)
    return {
        "name": name,
        "exists": True,
        "paused": bool(found.paused),
        "schedules": schedules,
        "status": str(status) if status else None,  # READY: a process polls it now
    }


def collect(config: PipelineConfig, limit: int) -> dict:
    """What ``recpipe status`` shows, as data: the published table, the runs in progress,
    the last nightly runs (MLflow) and the Prefect server's view (runs, schedule)."""
    from tasks.storage.locks import held_locks
    from tasks.storage.workspace import Workspace

    ws = Workspace(config.workspace)
    url = config.publish.url(ws.database_url)
    try:
        table = table_status(url, config.publish.table)
    except Exception as exc:  # noqa: BLE001 - status must answer whatever the store does
        table = {"exists": None, "error": str(exc).splitlines()[0]}
    held = held_locks(ws.root / "locks") if (ws.root / "locks").is_dir() else {}
    running_dates = {name.removeprefix("run_date=") for name in held}
    runs = mlflow_runs(config, limit)
    for r in runs:
        r["notes"] = run_notes(r, running_dates)
    return {
        "workspace": str(ws.root),
        "table_name": config.publish.table,
        "table": table,
        "running": [{"name": name, **info} for name, info in held.items()],
        "runs": runs,
        "prefect": prefect_runs(limit, config.schedule.deployment),
    }


def run_notes(run: dict, running_dates: set[str]) -> str:
    """What to know about one nightly run, in a few words."""
    notes = []
    if run["status"] == "RUNNING" and run["run_date"] not in running_dates:
        notes.append("no process holds its lock: crashed or killed")
    if run["failed_stage"] or run["error"]:
        notes.append(f"stage {run['failed_stage'] or '?'} failed: {run['error'][:120]}")
    elif run["decision"] == "promoted" and run.get("champion_outcome", "").startswith("alias left"):
        notes.append("challenger promoted for this older date; the alias stayed (backfill)")
    elif run["decision"]:
        notes.append(f"champion {run['decision']}")
    if run["cached"] and run["cached"] != "none":
        notes.append(f"cached: {run['cached']}")
    return "; ".join(notes)


def schedule_line(prefect: dict) -> str:
    """The state of the schedule in one sentence (a reachable server only)."""
    schedule = prefect.get("schedule") or {}
    if not schedule.get("exists"):
        return (
            f"schedule: no deployment '{schedule.get('name')}' on this server: nothing runs "
            "on a schedule (start 'recpipe serve')"
        )
    crons = ", ".join(
        f"'{s['cron']}' ({s['timezone'] or 'UTC'})" for s in schedule["schedules"] if s["cron"]
    )
    if schedule["paused"]:
        return (
            f"schedule: PAUSED: deployment '{schedule['name']}' ({crons or 'no cron'}) runs "
            "nothing until 'recpipe serve' starts again (which resumes it; it pauses the "
            "schedule when it stops) or it is resumed in the Prefect UI"
        )
    if not any(s["active"] for s in schedule["schedules"]):
        return f"schedule: INACTIVE: deployment '{schedule['name']}' has no active schedule"
    served = (
        "served now"
        if schedule.get("status") == "READY"
        else "no process serves it now (start 'recpipe serve'): runs wait until one does"
    )
    return f"schedule: active, {crons}; deployment '{schedule['name']}' {served}"
