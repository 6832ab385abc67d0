"""``recpipe serve``, ``trigger`` and ``status``: the nightly flow on a real Prefect server
(flows/operate.py, flows/status.py)."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from flows.cli.context import load, parse_date
from flows.cli.options import RUN_OPTIONS, SCHEDULE_OPTIONS, with_options


@with_options(SCHEDULE_OPTIONS, RUN_OPTIONS)
def serve(ctx: typer.Context, *, options: dict[str, Any]) -> None:
    """Register the cron deployment recpipe-nightly on a Prefect server; run its runs.

    The server is PREFECT_API_URL (environment or Prefect profile). Ctrl-C stops serving
    and pauses the schedule until it is served again.
    """
    from flows.operate import serve as serve_deployment

    serve_deployment(load(ctx, options, temporary_server=False))


def trigger(
    ctx: typer.Context,
    run_date: Annotated[
        str | None, typer.Option("--run-date", help="YYYY-MM-DD (default: today, UTC)")
    ] = None,
    as_of: Annotated[bool, typer.Option("--as-of", help="as-of run (see run --as-of)")] = False,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="wait for the run to end and print its summary"),
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", metavar="SECONDS", help="with --wait: give up after SECONDS"),
    ] = None,
    deployment: Annotated[
        str | None, typer.Option("--deployment", help="deployment name (schedule.deployment)")
    ] = None,
) -> None:
    """Start a run of the served deployment now (needs PREFECT_API_URL)."""
    from flows.cli.summary import print_stored_summary
    from flows.operate import stored_summary
    from flows.operate import trigger as trigger_run

    config = load(ctx, {"deployment": deployment}, temporary_server=False)
    day = parse_date(run_date, "--run-date")
    flow_run = trigger_run(config, day, wait, timeout, as_of)
    state = flow_run.state
    print(
        f"flow run {flow_run.name} ({flow_run.id}) of deployment "
        f"recpipe-nightly/{config.schedule.deployment}: {state.name if state else 'created'}",
        flush=True,
    )
    if not wait:
        print(
            "it runs as soon as 'recpipe serve' (or a worker of the deployment's pool) picks it "
            f"up; follow it with 'recpipe status' or 'prefect flow-run inspect {flow_run.id}'"
        )
        return
    if state is None or not state.is_final():
        print(
            f"recpipe: still {state.name if state else 'pending'} after --timeout", file=sys.stderr
        )
        raise typer.Exit(3)
    print()
    pinned = (flow_run.parameters or {}).get("config") or {}
    workspace = pinned.get("workspace") if isinstance(pinned, dict) else None
    print_stored_summary(stored_summary(flow_run.id), str(flow_run.id), workspace)
    if not state.is_completed():
        print(
            f"recpipe: the run ended {state.name}: {state.message or 'no message'}",
            file=sys.stderr,
        )
        raise typer.Exit(2)


def status(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", help="runs to list")] = 10,
) -> None:
    """The last runs, their states, the schedule, and the run date the table serves."""
    from flows.cli.output import show, table
    from flows.status import collect, schedule_line

    s = collect(load(ctx, temporary_server=False, existing=True), limit)
    lines = [f"workspace {s['workspace']}"]
    t, name = s["table"], s["table_name"]
    if t.get("exists"):
        lines.append(
            f"table '{name}': serving run date {t['latest']} ({t['rows']:,} rows; "
            f"{t['dates']} run date(s) kept)"
        )
    elif t.get("exists") is False:
        lines.append(f"table '{name}': not published yet")
    else:
        lines.append(f"table '{name}': cannot read ({t.get('error')})")
    for r in s["running"]:
        lines.append(
            f"running now: {r['name']} (flow run {r.get('flow_run_id')}, pid {r.get('pid')} "
            f"on {r.get('host')}, since {r.get('since')})"
        )
    show("\n".join(lines))

    runs = table(
        "run date",
        "status",
        "started (UTC)",
        ">secs",
        ">rows",
        ">jaccard",
        ">coverage",
        "~notes",
        title=f"last {len(s['runs'])} nightly run(s) (MLflow, newest first)",
    )
    for r in s["runs"]:
        runs.add_row(
            r["run_date"],
            r["status"],
            r["started"],
            _num(r["seconds"], 1),
            _num(r["rows"], 0),
            _num(r["jaccard"], 3),
            _num(r["coverage"], 3),
            r["notes"],
        )
    show("", runs if s["runs"] else runs.title + ": none")

    p = s["prefect"]
    if not p.get("configured"):
        show(
            "",
            "Prefect: PREFECT_API_URL is not set, so nothing runs on a schedule "
            "(see 'recpipe serve')",
        )
        return
    if not p.get("reachable"):
        show("", f"Prefect: server {p['url']} not reachable {p.get('error', '')}".rstrip())
        return
    show("", f"Prefect server {p['url']}: next scheduled run {p['next'] or 'none'}")
    show(schedule_line(p))
    if p["runs"]:
        flow_runs = table("started (UTC)", "state", "flow run", "run date", "~message")
        for r in p["runs"]:
            flow_runs.add_row(
                r["start"], r["state"], r["name"], r["run_date"] or "today", r["message"][:100]
            )
        show(flow_runs)


def _num(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"
