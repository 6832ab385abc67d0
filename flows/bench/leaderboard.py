"""Side-by-side evaluation of models under one protocol: ``recpipe evaluate``.

For each model: a small grid of settings is tried, each fitted on the training
split (Keras models stop early on validation NDCG), the setting with the best
validation NDCG@K is kept, and only that one is scored on the test split, once.
Full ranking: every item the user has not interacted with in training (and
validation, when testing) is a candidate; no sampled negatives. Each model is an
MLflow run when a workspace is given. Fitting and scoring one model on a split
(settings, early stopping, refit) is flows/bench/fitting.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flows.bench.fitting import (
    Prepared,
    check_social,
    evaluate_model,
    prepare,
    reads_content,
    refit_params,
)
from tasks.errors import DataError
from tasks.evaluation.catalogue import CatalogueContent

# what other modules and the tests import from here (flows/bench/fitting.py holds them)
__all__ = [
    "Prepared",
    "evaluate_model",
    "evaluate_source",
    "format_leaderboard",
    "prepare",
    "refit_params",
    "run_leaderboard",
    "write_leaderboard",
]


def run_leaderboard(
    interactions: pd.DataFrame,
    items: pd.DataFrame | None,
    protocol: str,
    models: list[str],
    k: int = 10,
    seed: int = 42,
    log: Any = None,
    refit: bool = False,
    edges: pd.DataFrame | None = None,
    direction: str = "mutual",
    catalogue: CatalogueContent | None = None,
    users: CatalogueContent | None = None,
) -> pd.DataFrame:
    """One row per model, best test NDCG first. ``log(row)`` is called after each model.
    ``edges``: the relations between users the social models read (``direction``
    ``mutual`` or ``follows``); a social model without them is refused before any fit.
    ``catalogue``: the items' content, given to the models that read it; ``users``: the
    users' attributes (a users table), given as ``user_content`` to the models that
    read it."""
    check_social(models, edges)
    data = prepare(interactions, items, protocol, seed, edges, direction, catalogue, models, users)
    rows = []
    for name in models:
        row = evaluate_model(name, data, k, seed=seed, refit=refit)
        if log is not None:
            log(row, data)
        rows.append(row)
    frame = pd.DataFrame(rows).drop(columns=["history"])
    return frame.sort_values(f"test_ndcg@{k}", ascending=False, ignore_index=True)


def strict_json(value: Any) -> Any:
    """``value`` with NaN and infinities as None and numpy scalars as Python ones, so
    ``json.dumps(..., allow_nan=False)`` writes strict JSON (``null``, never ``NaN``)."""
    if isinstance(value, dict):
        return {str(key): strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def write_leaderboard(frame: pd.DataFrame, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = directory / "leaderboard.csv", directory / "leaderboard.json"
    out = frame.assign(params=frame["params"].map(json.dumps))
    out.to_csv(csv_path, index=False)
    if "epochs" in frame:  # a count: 12, not 12.0 (null where a model has no epochs)
        epochs = pd.to_numeric(frame["epochs"], errors="coerce").round().astype("Int64")
        frame = frame.assign(epochs=epochs)
    records = strict_json(frame.astype(object).to_dict("records"))
    json_path.write_text(json.dumps(records, indent=2, default=str, allow_nan=False))
    return csv_path, json_path


def format_leaderboard(frame: pd.DataFrame, k: int) -> str:
    cols = [
        "model",
        "inputs",
        f"test_ndcg@{k}",
        f"test_recall@{k}",
        f"test_hit@{k}",
        f"test_mrr@{k}",
        f"test_map@{k}",
        f"test_coverage@{k}",
        f"test_novelty@{k}",
        f"valid_ndcg@{k}",
        "train_seconds",
        "scoring_seconds",
        "epochs",
    ]
    cols = [c for c in cols if c in frame]
    shown = frame[cols].rename(columns=lambda c: c.replace("test_", ""))
    return shown.to_string(index=False, float_format=lambda v: f"{v:.4f}")


def evaluate_source(
    config: Any,
    protocol: str,
    models: list[str],
    k: int = 10,
    seed: int = 42,
    experiment: str = "recpipe-evaluate",
    refit: bool = False,
    new_items_share: float = 0.2,
) -> tuple[pd.DataFrame, Path, Path]:
    """Load the configured source, run the leaderboard, track each model in MLflow, write files.

    ``config`` is a PipelineConfig; results go to ``<workspace>/leaderboards/<protocol>-<time>/``.
    ``protocol`` "new-items" holds out ``new_items_share`` of the items
    (tasks/evaluation/new_items.py) and needs a catalogue with content. A source with a
    users table (MovieLens) gives its attributes to the models that read ``user_content``.
    """
    from datetime import UTC, datetime

    from tasks import tracking
    from tasks.evaluation.catalogue import catalogue_from_source, users_catalogue
    from tasks.ingest import load_source
    from tasks.storage.workspace import Workspace

    ws = Workspace.at(config.workspace)
    today = datetime.now(UTC).date()
    data = load_source(
        config.ingest, today, cache_dir=ws.root / "cache" / "movielens", content=config.content
    )
    assert data.interactions is not None  # None only with write_to
    interactions = data.interactions.dropna(subset=["user_id", "item_id", "timestamp"])
    catalogue = None
    if protocol == "new-items" or reads_content(models):
        try:
            catalogue = catalogue_from_source(
                data.items, data.content, config.content, config.ingest.source
            )
        except DataError:
            if protocol == "new-items":
                raise
    # the users' attributes (MovieLens: age, gender, occupation) for the models that read them
    users = (
        users_catalogue(data.users, config.content)
        if reads_content(models, "user_content")
        else None
    )
    client = tracking.client_for(ws)
    experiment_id = tracking.ensure_experiment(client, ws, experiment)
    parent = tracking.start_parent_run(
        client,
        experiment_id,
        f"evaluate-{config.ingest.source}-{protocol}",
        {
            "protocol": protocol,
            "source": config.ingest.source,
            "k": str(k),
            "refit": str(refit).lower(),
        },
    )

    def log(row: dict, prepared: Prepared) -> None:
        run_id = tracking.start_child_run(
            client,
            experiment_id,
            parent,
            row["model"],
            {
                "model": row["model"],
                "inputs": row["inputs"],
                "protocol": protocol,
                **tracking.package_versions(),
            },
        )
        tracking.log_params(
            client, run_id, tracking.flatten("", {"model": row["model"], **row["params"]})
        )
        tracking.log_curves(client, run_id, row["history"])
        scalars = {
            key: value
            for key, value in row.items()
            if isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
        }
        tracking.log_metrics(client, run_id, scalars)
        client.set_terminated(run_id)

    edges = None
    if config.ingest.social.path is not None:
        from tasks.sources.edges import read_edges

        edges, _ = read_edges(config.ingest.social)
    if protocol == "new-items":
        from flows.bench.new_items import run_new_items_leaderboard

        assert catalogue is not None
        frame = run_new_items_leaderboard(
            interactions,
            data.items,
            catalogue,
            models,
            k,
            seed,
            new_items_share,
            log=log,
            refit=refit,
            edges=edges,
            direction=config.ingest.social.direction,
            users=users,
        )
    else:
        frame = run_leaderboard(
            interactions,
            data.items,
            protocol,
            models,
            k,
            seed,
            log=log,
            refit=refit,
            edges=edges,
            direction=config.ingest.social.direction,
            catalogue=catalogue,
            users=users,
        )
    client.set_terminated(parent)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    csv_path, json_path = write_leaderboard(frame, ws.root / "leaderboards" / f"{protocol}-{stamp}")
    return frame, csv_path, json_path
