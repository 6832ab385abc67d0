"""``recpipe backtest --start D1 --end D2 [--every 7d]``: the champion decision replayed as of
past dates and scored on the period that followed (flows/backtest.py)."""

from __future__ import annotations

import re
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
    ] = "popularity,ease,mult_dae",
    epochs: Annotated[
        int, typer.Option("--epochs", help="epochs of the Keras models (kept small: 2 cores)")
    ] = 10,
    *,
    options: dict[str, Any],
) -> None:
    """Replay the nightly gate as of each date; print the champion, the best in hindsight
    and the regret per night, and fixed-model policies; CSV and an MLflow run."""
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
    from flows.backtest import backtest_dates, policy_regrets, replay

    dates = backtest_dates(first, last, days)
    interactions, items = _load(config, last)
    folder = _folder(config, first, last)
    print(
        f"backtest: {len(dates)} date(s) {first} .. {last} every {days} d, models "
        f"{', '.join(names)}; source {config.ingest.source} "
        f"({len(interactions)} events {interactions['timestamp'].min()} .. "
        f"{interactions['timestamp'].max()})"
    )
    rows = replay(interactions, dates, days, config, items, workspace=folder / "workspace")
    regrets = policy_regrets(rows, names)
    print(f"\nmean regret (NDCG@{config.evaluate.k}, lower is better):")
    for policy, value in regrets.items():
        print(f"  {policy:<20} {value:.4f}")
    csv_path, run_id = _record(config, rows, regrets, first, last, days, folder)
    print(f"\nwritten: {csv_path}\nMLflow: experiment 'recpipe-backtest', run {run_id}")


def _load(config: Any, last: Any) -> tuple[Any, Any]:
    """The source's interactions (rows with ids and a timestamp) and its items table."""
    from datetime import timedelta

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


def _record(
    config: Any, rows: list[dict], regrets: dict, first: Any, last: Any, days: int, folder: Any
) -> tuple:
    """The table as CSV in ``folder`` and one MLflow run."""
    import pandas as pd

    from tasks import tracking
    from tasks.storage.workspace import Workspace

    ws = Workspace.at(config.workspace)
    csv_path = folder / "backtest.csv"
    pd.DataFrame(rows).to_csv(csv_path, index=False)
    client = tracking.client_for(ws)
    experiment_id = tracking.ensure_experiment(client, ws, "recpipe-backtest")
    run_id = tracking.start_parent_run(
        client,
        experiment_id,
        f"backtest-{first}-{last}",
        {"source": config.ingest.source, "start": str(first), "end": str(last)},
    )
    tracking.log_params(
        client,
        run_id,
        tracking.flatten(
            "",
            {
                "every_days": days,
                "models": ",".join(config.train.models),
                "evaluate": config.evaluate.model_dump(mode="json"),
                "features": config.features.model_dump(mode="json"),
            },
        ),
    )
    for step, row in enumerate(rows):
        values = {
            k: v for k, v in row.items() if isinstance(v, float) and pd.notna(v) and k != "seconds"
        }
        tracking.log_metrics(client, run_id, values, step=step)
    tracking.log_metrics(
        client, run_id, {f"mean_regret.{k.replace(' ', '_')}": v for k, v in regrets.items()}
    )
    client.log_artifact(run_id, str(csv_path))
    client.set_terminated(run_id)
    return csv_path, run_id
