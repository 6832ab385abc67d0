"""``recpipe status``: what the table serves, what runs now, the last runs and their states.

Read from the database (the table's newest run date), the run locks (runs in progress),
the MLflow parent runs of the workspace and, when PREFECT_API_URL is set, the Prefect API.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

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
                "seconds": round((end - start) / 1000) if start and end else None,
                "failed_stage": tags.get("recpipe.failed_stage", ""),
                "error": tags.get("recpipe.error", ""),
                "decision": tags.get("promotion.decision", ""),
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
    except Exception as exc:  # noqa: BLE001 - status must answer whatever the server does
        return {"configured": True, "reachable": False, "url": url, "error": str(exc)}
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
        "next": upcoming[0].expected_start_time.isoformat() if upcoming else None,
    }


def status(config: PipelineConfig, limit: int) -> str:
    """Text for ``recpipe status``."""
    from tasks.storage.locks import held_locks
    from tasks.storage.workspace import Workspace

    ws = Workspace(config.workspace)
    lines = [f"workspace {ws.root}"]
    url = config.publish.database_url or ws.database_url
    table = config.publish.table
    try:
        t = table_status(url, table)
    except Exception as exc:  # noqa: BLE001
        t = {"exists": None, "error": str(exc).splitlines()[0]}
    if t.get("exists"):
        lines.append(
            f"table '{table}': serving run date {t['latest']} ({t['rows']:,} rows; "
            f"{t['dates']} run date(s) kept)"
        )
    elif t.get("exists") is False:
        lines.append(f"table '{table}': not published yet")
    else:
        lines.append(f"table '{table}': cannot read ({t.get('error')})")

    held = held_locks(ws.root / "locks") if (ws.root / "locks").is_dir() else {}
    running_dates = {name.removeprefix("run_date=") for name in held}
    for name, info in held.items():
        lines.append(
            f"running now: {name} (flow run {info.get('flow_run_id')}, pid {info.get('pid')} "
            f"on {info.get('host')}, since {info.get('since')})"
        )

    runs = mlflow_runs(config, limit)
    lines.append("")
    lines.append(f"last {len(runs)} nightly run(s) (MLflow, newest first):")
    if runs:
        lines.append(
            f"  {'run date':<10}  {'status':<9} {'started (UTC)':<16} {'secs':>5}  "
            f"{'rows':>7}  {'jaccard':>7}  {'coverage':>8}  notes"
        )
    for r in runs:
        state = r["status"]
        notes = []
        if state == "RUNNING" and r["run_date"] not in running_dates:
            notes.append("no process holds its lock: crashed or killed")
        if r["failed_stage"] or r["error"]:
            notes.append(f"stage {r['failed_stage'] or '?'} failed: {r['error'][:120]}")
        elif r["decision"]:
            notes.append(f"champion {r['decision']}")
        if r["cached"] and r["cached"] != "none":
            notes.append(f"cached: {r['cached']}")
        lines.append(
            f"  {r['run_date']:<10}  {state:<9} {r['started']:<16} {_num(r['seconds'], 0):>5}  "
            f"{_num(r['rows'], 0):>7}  {_num(r['jaccard'], 3):>7}  {_num(r['coverage'], 3):>8}  "
            + "; ".join(notes)
        )

    p = prefect_runs(limit, config.schedule.deployment)
    lines.append("")
    if not p.get("configured"):
        lines.append(
            "Prefect: PREFECT_API_URL is not set, so nothing runs on a schedule "
            "(see 'recpipe serve')"
        )
    elif not p.get("reachable"):
        lines.append(f"Prefect: server {p['url']} not reachable {p.get('error', '')}".rstrip())
    else:
        lines.append(f"Prefect server {p['url']}: next scheduled run {p['next'] or 'none'}")
        for r in p["runs"]:
            lines.append(
                f"  {r['start']:<16} {r['state']:<10} {r['name']:<24} run_date "
                f"{r['run_date'] or 'today'}  {r['message'][:100]}"
            )
    return "\n".join(lines)


def _num(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"
