"""``recpipe evaluate``: models side by side under one protocol; a leaderboard."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import typer

from flows.cli.context import load
from flows.cli.options import SOURCE_OPTIONS, split_models, with_options

LEADERBOARD_COLUMNS = (
    "ndcg",
    "recall",
    "hit",
    "mrr",
    "map",
    "coverage",
    "novelty",
)


@with_options(SOURCE_OPTIONS)
def evaluate(
    ctx: typer.Context,
    protocol: Annotated[
        Literal["temporal", "leave-last-out", "random"], typer.Option("--protocol")
    ] = "temporal",
    models: Annotated[
        str, typer.Option("--models", help="comma-separated model names (see README: Models)")
    ] = "popularity,item_knn,ease,mult_dae",
    k: Annotated[int, typer.Option("--k")] = 10,
    seed: Annotated[int, typer.Option("--seed", help="split and model seed")] = 42,
    *,
    options: dict[str, Any],
) -> None:
    """Train and evaluate models side by side; print and save a leaderboard."""
    config = load(ctx, options)
    from flows.bench.leaderboard import evaluate_source
    from flows.cli.output import show

    frame, csv_path, json_path = evaluate_source(config, protocol, split_models(models), k, seed)
    show(
        f"leaderboard: source {config.ingest.source}, protocol {protocol}, "
        f"full ranking, K={k} (test split, each model tuned on validation)",
        leaderboard(frame, k),
        f"written: {csv_path}\n         {json_path}",
        f"MLflow: experiment 'recpipe-evaluate' in {config.workspace / 'mlflow' / 'mlflow.db'}",
    )


def leaderboard(frame: Any, k: int) -> Any:
    """The leaderboard frame as a table: test metrics at K, validation NDCG, times."""
    from flows.cli.output import table

    columns = [f"test_{m}@{k}" for m in LEADERBOARD_COLUMNS] + [
        f"valid_ndcg@{k}",
        "train_seconds",
        "scoring_seconds",
        "epochs",
    ]
    columns = [c for c in columns if c in frame]
    out = table("model", *(">" + c.removeprefix("test_") for c in columns))
    for _, row in frame.iterrows():
        out.add_row(str(row["model"]), *(_cell(row[c], c) for c in columns))
    return out


def _cell(value: Any, column: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if column == "epochs":
        return str(int(value))
    if column.endswith("_seconds"):
        return f"{value:.1f}"
    return f"{value:.4f}" if isinstance(value, float) else str(value)
