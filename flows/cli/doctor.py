"""``recpipe doctor``: finish or undo interrupted publishes, sweep leftovers, then prove
that the two stores agree on every kept date; ``--repair`` rebuilds what does not.

Exit codes: 0 the stores agree; 1 something does not agree (the table says what, the
last line names the repair); 2 the check itself failed.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from flows.cli.context import load


def publish_stores(ctx: typer.Context) -> tuple[Any, Any]:
    """The config and the publish stores (lake folder, database) of the workspace."""
    from tasks.publishing.stores import Stores
    from tasks.storage.workspace import Workspace

    config = load(ctx, environment=False, existing=True)
    ws = Workspace.at(config.workspace)
    return config, Stores(ws.root, config.publish.url(ws.database_url))


def doctor(
    ctx: typer.Context,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="rebuild the damaged store's dates from the whole one (a backup of what "
            "it replaces goes to <workspace>/backups/)",
        ),
    ] = False,
    every_row: Annotated[
        bool,
        typer.Option(
            "--every-row",
            help="read every database row too, also of dates whose count matches what "
            "their publish logged (slower)",
        ),
    ] = False,
) -> None:
    """Check that the database and the lake hold the same rows for every kept date."""
    from tasks.publishing.recovery import recover
    from tasks.publishing.stores import RECOMMENDATIONS, SIMILAR_ITEMS
    from tasks.publishing.verify import verify

    config, stores = publish_stores(ctx)
    names = (config.publish.table, config.publish.similar_table)
    tables = [(names[0], RECOMMENDATIONS), (names[1], SIMILAR_ITEMS)]
    started = time.perf_counter()
    try:
        done = recover(stores, tables=names)
    except Exception as exc:  # noqa: BLE001 - a damaged store: the check below says which
        done = []
        print(f"recovery skipped: {exc}")
    for item in done:
        print(f"{item['action']}: {item.get('publish_id') or item.get('name')}")
    report = verify(stores, tables, every_row=every_row)
    if repair and not report.agrees:
        from tasks.publish import publish_night
        from tasks.publishing.repair import repair as run_repair

        result = run_repair(stores, tables, report, publish_night)
        for action in result["actions"]:
            print(f"repaired: {action}")
        if result["backup"] is not None:
            print(f"backup of what was replaced: {result['backup']}")
        report = result["report"]
    print_report(report)
    seconds = time.perf_counter() - started
    if report.agrees:
        print(f"the stores agree on {len({d.day for d in report.dates})} date(s) ({seconds:.1f} s)")
        return
    print(f"recpipe doctor: {report.summary()}; run 'recpipe doctor --repair' to repair it")
    raise typer.Exit(1)


def print_report(report: Any) -> None:
    """One line per table and date: both stores' rows and digests, and the verdict."""
    from flows.cli.output import show, table

    out = table("table", "date", "database", "lake", "verdict")
    for d in report.dates:
        out.add_row(
            d.table,
            str(d.day),
            _cell(d.database, d.database_error),
            _cell(d.lake, d.lake_error),
            "agree" if d.damaged is None else f"DIFFERS ({d.damaged} damaged)",
        )
    show(out)
    for finding in report.findings:
        print(f"  {finding.store}: {finding.check}: {finding.detail}")
    for d in report.disagreements():
        print(f"  {d.table} {d.day}: {d.describe()}")


def _cell(found: Any, error: str | None) -> str:
    if error:
        return f"ERROR {error[:60]}"
    return str(found) if found is not None else "-"
