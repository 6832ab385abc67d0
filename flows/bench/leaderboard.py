"""Side-by-side evaluation of models under one protocol: ``recpipe evaluate``.

For each model: a small grid of settings is tried, each fitted on the training
split (Keras models stop early on validation NDCG), the setting with the best
validation NDCG@K is kept, and only that one is scored on the test split, once.
Full ranking: every item the user has not interacted with in training (and
validation, when testing) is a candidate; no sampled negatives. Each model is an
MLflow run when a workspace is given.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models import make_recommender
from models.inputs import sequences_from_events
from models.metrics import evaluate_rankings
from tasks.data.model_inputs import item_content_features
from tasks.data.splits import Split, split

# Small grids on the validation split; the first entry of each is the default.
GRIDS: dict[str, list[dict[str, Any]]] = {
    "popularity": [{}],
    "item_knn": [
        {"neighbors": 200, "shrinkage": 10.0},
        {"neighbors": 100, "shrinkage": 0.0},  # RecBole's defaults
        {"neighbors": 400, "shrinkage": 0.0},
        {"neighbors": 100, "shrinkage": 50.0},
    ],
    "ease": [{"l2": 300.0}, {"l2": 100.0}, {"l2": 800.0}],
    # implicit's ALS and BPR; on MovieLens 100K few factors and strong regularisation win
    "als": [
        {"factors": 32, "regularization": 20.0, "alpha": 2.0, "iterations": 15},
        {"factors": 48, "regularization": 20.0, "alpha": 2.0, "iterations": 15},
        {"factors": 32, "regularization": 10.0, "alpha": 2.0, "iterations": 15},
    ],
    "bpr": [
        {"factors": 64, "learning_rate": 0.005, "regularization": 0.001, "iterations": 100},
        {"factors": 64, "learning_rate": 0.005, "regularization": 0.01, "iterations": 100},
        {"factors": 64, "learning_rate": 0.01, "regularization": 0.01, "iterations": 40},
    ],
    "mult_dae": [
        # Liang et al.: 600 tanh units, input dropout 0.5, L2 0.01 on the weights, batch 500
        {
            "hidden_dim": 600,
            "dropout": 0.5,
            "l2": 1e-2,
            "batch_size": 500,
            "learning_rate": 3e-3,
            "epochs": 600,
            "patience": 20,
        },
        {"hidden_dim": 600, "dropout": 0.5, "l2": 1e-2, "epochs": 300, "patience": 10},
        {"hidden_dim": 1000, "dropout": 0.7, "l2": 1e-3, "epochs": 300, "patience": 10},
        {"hidden_dim": 200, "dropout": 0.5, "l2": 1e-5, "epochs": 100, "patience": 5},
    ],
    "mult_vae": [{"total_anneal_steps": 2000, "epochs": 150, "patience": 8}],
    "gru4rec": [{"cell": "gru", "epochs": 30, "patience": 5}],
    "caser": [{"epochs": 30, "patience": 5}],
    "two_tower": [{"loss": "softmax", "temperature": 0.1, "epochs": 30}],
}


@dataclass(frozen=True)
class Prepared:
    split: Split
    train: Any
    train_valid: Any
    valid_target: tuple[np.ndarray, Any]
    test_target: tuple[np.ndarray, Any]
    seq_train: list[np.ndarray]
    seq_train_valid: list[np.ndarray]
    item_features: np.ndarray | None


def prepare(
    interactions: pd.DataFrame, items: pd.DataFrame | None, protocol: str, seed: int
) -> Prepared:
    s = split(interactions, protocol, seed)
    n_users = len(s.users)

    def sequences(*parts: str) -> list[np.ndarray]:
        frame = pd.concat([getattr(s, p) for p in parts]).sort_values("timestamp", kind="stable")
        return sequences_from_events(
            frame["user_idx"].to_numpy(),
            frame["item_idx"].to_numpy(),
            frame["timestamp"].to_numpy(),
            n_users,
        )

    return Prepared(
        split=s,
        train=s.matrix("train"),
        train_valid=s.matrix("train", "valid"),
        valid_target=s.target("valid", ("train",)),
        test_target=s.target("test", ("train", "valid")),
        seq_train=sequences("train"),
        seq_train_valid=sequences("train", "valid"),
        item_features=item_content_features(s.items, items),
    )


def _rank(
    model: Any, users: np.ndarray, k: int, history: Any, sequences: list
) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    recommended, _ = model.recommend(users, k, history=history, sequences=sequences)
    return recommended, time.perf_counter() - start


def evaluate_model(
    name: str, data: Prepared, k: int, grid: list[dict] | None = None, seed: int = 42
) -> dict:
    """Tune ``name`` on validation, score the best setting once on test."""
    candidates = []
    for params in grid or GRIDS.get(name, [{}]):
        if name != "popularity" and name not in ("item_knn", "ease"):
            params = {"seed": seed, **params}
        model = make_recommender(name, **params)
        start = time.perf_counter()
        model.fit(
            data.train,
            data.seq_train,
            item_features=data.item_features,
            validation=data.valid_target,
        )
        train_seconds = time.perf_counter() - start
        users, relevant = data.valid_target
        recommended, _ = _rank(model, users, k, data.train, data.seq_train)
        valid = evaluate_rankings(recommended, relevant, k)[f"ndcg@{k}"]
        candidates.append((valid, params, model, train_seconds))
    valid, params, model, train_seconds = max(candidates, key=lambda c: c[0])
    users, relevant = data.test_target
    recommended, scoring_seconds = _rank(model, users, k, data.train_valid, data.seq_train_valid)
    metrics = evaluate_rankings(recommended, relevant, k, train=data.train_valid)
    history = getattr(model, "history_", {}) or {}
    return {
        "model": name,
        "params": params,
        "tried": len(candidates),
        f"valid_ndcg@{k}": valid,
        **{f"test_{m}": v for m, v in metrics.items()},
        "epochs": len(next(iter(history.values()), [])) if history else None,
        "train_seconds": round(train_seconds, 2),
        "scoring_seconds": round(scoring_seconds, 3),
        "history": history,
    }


def run_leaderboard(
    interactions: pd.DataFrame,
    items: pd.DataFrame | None,
    protocol: str,
    models: list[str],
    k: int = 10,
    seed: int = 42,
    log: Any = None,
) -> pd.DataFrame:
    """One row per model, best test NDCG first. ``log(row)`` is called after each model."""
    data = prepare(interactions, items, protocol, seed)
    rows = []
    for name in models:
        row = evaluate_model(name, data, k, seed=seed)
        if log is not None:
            log(row, data)
        rows.append(row)
    frame = pd.DataFrame(rows).drop(columns=["history"])
    return frame.sort_values(f"test_ndcg@{k}", ascending=False, ignore_index=True)


def write_leaderboard(frame: pd.DataFrame, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = directory / "leaderboard.csv", directory / "leaderboard.json"
    out = frame.assign(params=frame["params"].map(json.dumps))
    out.to_csv(csv_path, index=False)
    json_path.write_text(json.dumps(frame.to_dict("records"), indent=2, default=str))
    return csv_path, json_path


def format_leaderboard(frame: pd.DataFrame, k: int) -> str:
    cols = [
        "model",
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
) -> tuple[pd.DataFrame, Path, Path]:
    """Load the configured source, run the leaderboard, track each model in MLflow, write files.

    ``config`` is a PipelineConfig; results go to ``<workspace>/leaderboards/<protocol>-<time>/``.
    """
    from datetime import UTC, datetime

    from tasks import tracking
    from tasks.ingest import load_source
    from tasks.storage.workspace import Workspace

    ws = Workspace.at(config.workspace)
    today = datetime.now(UTC).date()
    data = load_source(config.ingest, today, cache_dir=ws.root / "cache" / "movielens")
    interactions = data.interactions.dropna(subset=["user_id", "item_id", "timestamp"])
    client = tracking.client_for(ws)
    experiment_id = tracking.ensure_experiment(client, ws, experiment)
    parent = tracking.start_parent_run(
        client,
        experiment_id,
        f"evaluate-{config.ingest.source}-{protocol}",
        {"protocol": protocol, "source": config.ingest.source, "k": str(k)},
    )

    def log(row: dict, prepared: Prepared) -> None:
        run_id = tracking.start_child_run(
            client,
            experiment_id,
            parent,
            row["model"],
            {"model": row["model"], "protocol": protocol, **tracking.package_versions()},
        )
        tracking.log_params(
            client, run_id, tracking.flatten("", {"model": row["model"], **row["params"]})
        )
        tracking.log_curves(client, run_id, row["history"])
        scalars = {
            key: value
            for key, value in row.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        }
        tracking.log_metrics(client, run_id, scalars)
        client.set_terminated(run_id)

    frame = run_leaderboard(interactions, data.items, protocol, models, k, seed, log=log)
    client.set_terminated(parent)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    csv_path, json_path = write_leaderboard(frame, ws.root / "leaderboards" / f"{protocol}-{stamp}")
    return frame, csv_path, json_path
