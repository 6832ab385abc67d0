"""``recpipe recs show | similar | rollback``: read (or roll back) the published tables."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from flows.cli.context import load, parse_date

app = typer.Typer(help="Read the published recommendation tables.", no_args_is_help=True)

RunDate = Annotated[str | None, typer.Option("--run-date", help="YYYY-MM-DD (default: the latest)")]


def _lookup(ctx: typer.Context, run_date: str | None) -> tuple[Any, str, dict[str, str], Any]:
    """The config, the database URL, the items' titles and the ``--run-date`` asked for."""
    import pandas as pd

    from tasks.storage.lookup import latest_titles
    from tasks.storage.workspace import Workspace

    config = load(ctx, environment=False, existing=True)
    ws = Workspace(config.workspace)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_colwidth", 60)
    day = parse_date(run_date, "--run-date")
    return config, config.publish.url(ws.database_url), latest_titles(ws.root / "raw"), day


@app.command()
def show(
    ctx: typer.Context,
    user: Annotated[str, typer.Option("--user", help="raw user id, as in the input")],
    run_date: RunDate = None,
) -> None:
    """A user's recommendations with titles and reasons."""
    from tasks.storage.lookup import user_recommendations

    config, url, titles, day = _lookup(ctx, run_date)
    frame = user_recommendations(url, config.publish.table, user, titles, day)
    first = frame.iloc[0]
    print(
        f"user {user}: run date {first['run_date']}, model {first['model_name']} "
        f"v{first['model_version']}, strategy {first['strategy']}"
    )
    shown = frame[["rank", "item_id", "title", "score", "reason"]]
    print(shown.fillna({"title": "-", "reason": "-"}).to_string(index=False))


@app.command()
def similar(
    ctx: typer.Context,
    item: Annotated[str, typer.Option("--item", help="raw item id, as in the input")],
    run_date: RunDate = None,
) -> None:
    """The items most similar to an item."""
    from tasks.storage.lookup import similar_items

    config, url, titles, day = _lookup(ctx, run_date)
    frame = similar_items(url, config.publish.similar_table, item, titles, day)
    print(f"items similar to {item} {titles.get(item, '')} (run date {frame.iloc[0]['run_date']}):")
    print(frame[["rank", "similar_item_id", "title", "score"]].to_string(index=False))


@app.command()
def rollback(
    ctx: typer.Context,
    date: Annotated[str, typer.Option("--date", help="run date YYYY-MM-DD")],
) -> None:
    """Publish a date's previous version again, in the database and the lake (journaled)."""
    from flows.cli.doctor import publish_stores
    from tasks.publish import rollback_date
    from tasks.publishing.recovery import recover
    from tasks.publishing.stores import RECOMMENDATIONS, SIMILAR_ITEMS
    from tasks.storage.locks import holder_info, run_lock

    config, stores = publish_stores(ctx)
    day = parse_date(date, "--date")
    holder = holder_info("recs-rollback", run_date=day.isoformat(), workspace=str(stores.root))
    with run_lock(stores.root / "locks", day, config.lock.wait_seconds, holder):
        recover(stores, held_date=day, tables=(config.publish.table, config.publish.similar_table))
        result = rollback_date(
            stores,
            day,
            [
                (config.publish.table, RECOMMENDATIONS),
                (config.publish.similar_table, SIMILAR_ITEMS),
            ],
        )
    print(
        f"{day}: back to the rows of run {result['restored_run_id']} (lake version "
        f"{result['from_version']}), {result['rows']} rows in table '{result['table']}' and "
        f"the lake ({result['lake']}); publish {result['publish_id']}"
    )
