"""``recpipe backtest --start D1 --end D2 [--every 7d]``: the champion decision replayed as of
past dates and scored on the period that followed (flows/backtest.py)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

import typer

from flows.cli.context import load, parse_date
from flows.cli.options import SOURCE_OPTIONS, split_models, with_options


def parse_every(value: str) -> int:
    """``7d``, ``2w`` or ``7`` -> days."""
    from tasks.errors import ConfigError

    match = re.fullmatch(r"\s*(\d+)\s*([dw]?)\s*", value or "")
    if not match or int(match.group(1)) < 1:
        raise ConfigError(f"--every {value!r}: expected a number of days or weeks, e.g. 7d or 2w")
    return int(match.group(1)) * (7 if match.group(2) == "w" else 1)


@with_options(SOURCE_OPTIONS)
def backtest(
    ctx: typer.Context,
    start: Annotated[str, typer.Option("--start", help="first date YYYY-MM-DD")],
    end: Annotated[str, typer.Option("--end", help="last date YYYY-MM-DD (inclusive)")],
    every: Annotated[
        str, typer.Option("--every", help="days between dates, and the period scored: 7d, 2w")
    ] = "7d",
    models: Annotated[
        str, typer.Option("--models", help="comma-separated model names")
    ] = "popularity,blend,mult_dae",
    epochs: Annotated[
        int, typer.Option("--epochs", help="epochs of the Keras models (kept small: 2 cores)")
    ] = 10,
    *,
    options: dict[str, Any],
) -> None:
    """Replay the nightly gate as of each date; print the champion, the best in hindsight
    and the regret per night, and the fixed-model policies; the per-date CSV, the policy
    table and a plot of each policy's next-period NDCG in an MLflow run."""
    config = load(ctx, options)
    first, last = parse_date(start, "--start"), parse_date(end, "--end")
    days = parse_every(every)
    names = split_models(models)
    keras = {n: {"epochs": epochs} for n in names if n not in ("popularity", "item_knn", "ease")}
    config = config.model_copy(
        update={
            "train": config.train.model_copy(
                update={
                    "models": names,
                    **{n: getattr(config.train, n).model_copy(update=v) for n, v in keras.items()},
                }
            )
        }
    )
    from flows.backtest import backtest_dates, policy_table, replay
    from flows.backtest_report import record, summary_text

    dates = backtest_dates(first, last, days)
    interactions, items = _load(config, last + timedelta(days=days - 1))
    folder = _folder(config, first, last)
    print(
        f"backtest: {len(dates)} date(s) {first} .. {last} every {days} d, models "
        f"{', '.join(names)}; hold-out {config.features.holdout}; source "
        f"{config.ingest.source} ({len(interactions)} events "
        f"{interactions['timestamp'].min()} .. {interactions['timestamp'].max()})"
    )
    rows = replay(interactions, dates, days, config, items, workspace=folder / "workspace")
    table = policy_table(rows, names)
    k = config.evaluate.k
    print(f"\nper policy (next-period NDCG@{k}, higher is better; regret, lower is better):")
    print(summary_text(table, k))
    params = {"start": first, "end": last, "every_days": days, "epochs": epochs}
    csv_path, run_id = record(config, rows, table, folder, f"backtest-{first}-{last}", params)
    print(f"\nwritten: {csv_path}\nMLflow: experiment 'recpipe-backtest', run {run_id}")


def _load(config: Any, last: Any) -> tuple[Any, Any]:
    """The source's interactions (rows with ids and a timestamp) and its items table, as
    of the night after ``last`` (the last day scored): the demo's weeks end there."""
    from tasks.ingest import load_source
    from tasks.storage.workspace import Workspace

    ws = Workspace.at(config.workspace)
    data = load_source(
        config.ingest, last + timedelta(days=1), cache_dir=ws.root / "cache" / "movielens"
    )
    assert data.interactions is not None  # None only with write_to
    interactions = data.interactions.dropna(subset=["user_id", "item_id", "timestamp"])
    return interactions.sort_values("timestamp", kind="stable", ignore_index=True), data.items


def _folder(config: Any, first: Any, last: Any) -> Any:
    """``<workspace>/backtests/<first>_<last>_<stamp>``: the nights' own workspace (their
    registry and champion, never the live ones) and the CSV."""
    from datetime import UTC, datetime

    from tasks.storage.workspace import Workspace

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    folder = Workspace.at(config.workspace).root / "backtests" / f"{first}_{last}_{stamp}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
