"""``recpipe evaluate``: models side by side under one protocol; a leaderboard."""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal, TextIO

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
        Literal["temporal", "leave-last-out", "random", "new-items"],
        typer.Option(
            "--protocol",
            help="new-items: hold out a share of the items with all their events and rank "
            "them by content (needs an item catalogue with content)",
        ),
    ] = "temporal",
    models: Annotated[
        str, typer.Option("--models", help="comma-separated model names (docs/manual/models.md)")
    ] = "popularity,item_knn,ease,mult_dae",
    k: Annotated[int, typer.Option("--k")] = 10,
    seed: Annotated[int, typer.Option("--seed", help="split and model seed")] = 42,
    refit: Annotated[
        bool,
        typer.Option(
            "--refit",
            help="fit each model's chosen setting again on train+valid before the test",
        ),
    ] = False,
    new_items_share: Annotated[
        float,
        typer.Option(
            "--new-items-share",
            help="--protocol new-items: the share of items held out (seeded by --seed)",
        ),
    ] = 0.2,
    *,
    options: dict[str, Any],
) -> None:
    """Train and evaluate models side by side; print and save a leaderboard.

    While it runs, each model's settings and epochs are printed to stderr."""
    if not 0 < new_items_share < 1:
        raise typer.BadParameter(
            f"expected a share between 0 and 1 (exclusive), e.g. 0.2; got {new_items_share}",
            param_hint="--new-items-share",
        )
    config = load(ctx, options)
    from flows.bench.leaderboard import evaluate_source
    from flows.cli.output import show

    with evaluation_progress():
        frame, csv_path, json_path = evaluate_source(
            config,
            protocol,
            split_models(models),
            k,
            seed,
            refit=refit,
            new_items_share=new_items_share,
        )
    tuned = "each model tuned on validation" + (", refit on train+valid" if refit else "")
    ranking = (
        f"{new_items_share:.0%} of items held out, ranked among themselves"
        if protocol == "new-items"
        else "full ranking"
    )
    show(
        f"leaderboard: source {config.ingest.source}, protocol {protocol}, "
        f"{ranking}, K={k} (test split, {tuned})",
        leaderboard(frame, k),
        f"written: {csv_path}\n         {json_path}",
        f"MLflow: experiment 'recpipe-evaluate' in {config.workspace / 'mlflow' / 'mlflow.db'}",
    )


def leaderboard(frame: Any, k: int) -> Any:
    """The leaderboard frame as a table: test metrics at K, validation NDCG, times."""
    from flows.cli.output import table

    columns = (
        ["inputs"]
        + [f"test_{m}@{k}" for m in LEADERBOARD_COLUMNS]
        + [
            f"valid_ndcg@{k}",
            "train_seconds",
            "scoring_seconds",
            "epochs",
            "note",
        ]
    )
    columns = [c for c in columns if c in frame]
    headers = [("" if c in ("inputs", "note") else ">") + c.removeprefix("test_") for c in columns]
    out = table("model", *headers)
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


class EvaluationProgress(logging.Handler):
    """Prints the ``recpipe.progress`` records of an evaluation: each setting a model
    tries (and its validation NDCG), and the epochs of a model trained in epochs. On a
    terminal the epoch counter is rewritten in place; otherwise one line per event, and
    for epochs one line per tenth of the planned epochs."""

    def __init__(self, out: TextIO | None = None) -> None:
        super().__init__(logging.INFO)
        self.out = out
        self.open_line = False  # an epoch counter waits to be overwritten

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "event", None)
        if event is None:
            return
        out = self.out or sys.stderr
        terminal = bool(getattr(out, "isatty", lambda: False)())
        if event == "epoch":
            setting = getattr(record, "setting", None)
            where = f" setting {setting}/{getattr(record, 'settings', '?')}" if setting else ""
            text = (
                f"  {getattr(record, 'model', '')}{where}: epoch "
                f"{getattr(record, 'epoch', 0)}/{getattr(record, 'epochs', 0)}"
            )
            epoch, epochs = int(getattr(record, "epoch", 0)), int(getattr(record, "epochs", 0))
            if terminal:
                out.write("\r" + text + "\x1b[K")
                self.open_line = True
            elif epoch % max(1, epochs // 10) == 0 or epoch == epochs:
                out.write(text + "\n")  # about ten lines per fit when not on a terminal
        else:
            if self.open_line:
                out.write("\n")
                self.open_line = False
            out.write(record.getMessage() + "\n")
        out.flush()


@contextmanager
def evaluation_progress(out: TextIO | None = None) -> Iterator[EvaluationProgress]:
    """Print evaluation progress (see :class:`EvaluationProgress`) inside the block."""
    logger = logging.getLogger("recpipe.progress")
    handler = EvaluationProgress(out)
    saved = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        if handler.open_line:
            (out or sys.stderr).write("\n")
