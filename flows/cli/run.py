"""``recpipe run`` and ``recpipe backfill``: the nightly flow now, in this process."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from flows.cli.context import load, parse_date, prepare, state
from flows.cli.options import RUN_OPTIONS, with_options


@with_options(RUN_OPTIONS)
def run(
    ctx: typer.Context,
    run_date: Annotated[
        str | None,
        typer.Option("--run-date", help="logical date YYYY-MM-DD (default: today, UTC)"),
    ] = None,
    as_of: Annotated[
        bool,
        typer.Option(
            "--as-of",
            help="use only events before the day after the run date (what backfill does)",
        ),
    ] = False,
    *,
    options: dict[str, Any],
) -> None:
    """Run the nightly flow now, in this process."""
    config = checked(ctx, options)
    day = parse_date(run_date, "--run-date")

    from flows.cli.progress import stage_progress
    from flows.cli.summary import print_summary
    from flows.nightly import nightly_flow_for

    flow = nightly_flow_for(config)
    with stage_progress("recpipe run"):
        summary = flow(config=config, run_date=day, as_of=as_of)
    print_summary(summary)


@with_options(RUN_OPTIONS)
def backfill(
    ctx: typer.Context,
    start: Annotated[str, typer.Option("--start", help="first run date YYYY-MM-DD")],
    end: Annotated[str, typer.Option("--end", help="last run date YYYY-MM-DD (inclusive)")],
    keep_going: Annotated[
        bool, typer.Option("--keep-going", help="go on with later dates when a date fails")
    ] = False,
    *,
    options: dict[str, Any],
) -> None:
    """Run the nightly flow for each past date, as of that date."""
    config = checked(ctx, options)
    first, last = parse_date(start, "--start"), parse_date(end, "--end")

    from flows.backfill import BackfillError, backfill_dates
    from flows.backfill import backfill as run_backfill
    from flows.cli.progress import stage_progress
    from flows.cli.summary import print_backfill
    from tasks.data.as_of import check_source

    backfill_dates(first, last)  # refuse a bad range before starting Prefect
    check_source(config.ingest.source)
    try:
        with stage_progress("recpipe backfill"):
            rows = run_backfill(start=first, end=last, config=config, keep_going=keep_going)
    except BackfillError as exc:
        print_backfill(getattr(exc, "rows", []))
        raise
    print_backfill(rows)


def checked(ctx: typer.Context, options: dict[str, Any]) -> Any:
    """The config, checked by tasks/preflight.py (input, columns, database, workspace, disk)
    before Prefect, MLflow or TensorFlow start: bad input fails in seconds."""
    from flows.measure import mark_stage
    from tasks.preflight import preflight

    config = load(ctx, options, environment=False)
    try:
        preflight(config)
    except Exception as exc:
        mark_stage(exc, "preflight")
        raise
    prepare(config.workspace, True, state(ctx).verbose)
    return config
