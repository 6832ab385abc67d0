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
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flows.bench.grids import GRIDS
from models import MODEL_CLASSES, declared_inputs, make_recommender
from models.ages import ages_from_events
from models.content import ItemContent
from models.inputs import sequences_from_events
from models.metrics import evaluate_rankings
from tasks.data.model_inputs import item_content_features
from tasks.data.splits import Split, split
from tasks.errors import DataError
from tasks.evaluation.catalogue import CatalogueContent


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
    social: Any = None  # users x users relations over the split's users, when given
    ages_train: Any = None  # each training interaction's age in days (models.ages)
    ages_train_valid: Any = None
    content: ItemContent | None = None  # typed item content, the split's items' rows first


def relations_matrix(edges: pd.DataFrame | None, users: Any, direction: str) -> Any:
    """The ``social`` fit input over the split's ``users`` (an ``IdVocabulary``) from
    ``edges`` (user_id, friend_id, weight; rows with an ingest issue left out, a mutual
    relation both ways, self-loops dropped, repeats kept once at their largest weight);
    edges to users without interactions are left out. None without edges."""
    if edges is None:
        return None
    from tasks.data.social import graph_frame, social_matrix

    usable = edges[edges["ingest_issue"].isna()] if "ingest_issue" in edges else edges
    vocabulary = pd.Series(users.ids.astype(str))
    return social_matrix(graph_frame(usable, direction, vocabulary), len(vocabulary))


def prepare(
    interactions: pd.DataFrame,
    items: pd.DataFrame | None,
    protocol: str,
    seed: int,
    edges: pd.DataFrame | None = None,
    direction: str = "mutual",
    catalogue: CatalogueContent | None = None,
    models: list[str] | None = None,
) -> Prepared:
    """The split of ``interactions`` by ``protocol`` and every fit input built from it;
    the typed item content (``content``) when ``catalogue`` has some and one of
    ``models`` reads it."""
    s = split(interactions, protocol, seed)
    content = None
    if catalogue and reads_content(models or []):
        content = catalogue.content(s.items.ids)
    return prepare_split(s, items, edges, direction, content)


def reads_content(models: list[str]) -> bool:
    """Whether one of ``models`` takes the typed item content in ``fit``."""
    return any("content" in getattr(MODEL_CLASSES.get(m), "fit_inputs", ()) for m in models)


def prepare_split(
    s: Split,
    items: pd.DataFrame | None,
    edges: pd.DataFrame | None = None,
    direction: str = "mutual",
    content: ItemContent | None = None,
) -> Prepared:
    """Every fit input of the split ``s`` (its train and valid parts; its test target)."""
    n_users = len(s.users)

    def sequences(*parts: str) -> list[np.ndarray]:
        frame = pd.concat([getattr(s, p) for p in parts]).sort_values("timestamp", kind="stable")
        return sequences_from_events(
            frame["user_idx"].to_numpy(),
            frame["item_idx"].to_numpy(),
            frame["timestamp"].to_numpy(),
            n_users,
        )

    def ages(*parts: str) -> Any:
        frame = pd.concat([getattr(s, p) for p in parts])
        return ages_from_events(
            frame["user_idx"].to_numpy(),
            frame["item_idx"].to_numpy(),
            frame["timestamp"].to_numpy(dtype="datetime64[ns]"),
            s.shape,
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
        social=relations_matrix(edges, s.users, direction),
        ages_train=ages("train"),
        ages_train_valid=ages("train", "valid"),
        content=content,
    )


def _rank(
    model: Any, users: np.ndarray, k: int, history: Any, sequences: list
) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    recommended, _ = model.recommend(users, k, history=history, sequences=sequences)
    return recommended, time.perf_counter() - start


@dataclass
class Chosen:
    """A model's setting chosen on validation, fitted (again on train+valid with
    ``refit``): what its leaderboard row reports beside the test figures."""

    model: Any
    params: dict
    tried: int
    valid: float
    epochs: int | None
    train_seconds: float
    history: dict


def choose_model(
    name: str,
    data: Prepared,
    k: int,
    grid: list[dict] | None = None,
    seed: int = 42,
    refit: bool = False,
) -> Chosen:
    """Fit each setting of ``name`` on training, keep the best on validation NDCG@k.

    ``refit``: the best setting is fitted again on training plus validation (a model
    that stopped early on validation trains for the epochs it chose), as every model
    alike; otherwise the model fitted on training is kept. Progress goes to the
    ``recpipe.progress`` logger (see :func:`announce`).
    """
    settings = grid or GRIDS.get(name, [{}])
    candidates = []
    for number, params in enumerate(settings, start=1):
        if "seed" in MODEL_CLASSES[name].settings_class.model_fields:
            params = {"seed": seed, **params}
        where = {"model": name, "setting": number, "settings": len(settings)}
        announce("setting", f"{name}: setting {number}/{len(settings)} {params}", **where)
        model, train_seconds = _fit(
            name, params, data.train, data.seq_train, data, where, ages=data.ages_train
        )
        users, relevant = data.valid_target
        recommended, _ = _rank(model, users, k, data.train, data.seq_train)
        valid = evaluate_rankings(recommended, relevant, k)[f"ndcg@{k}"]
        announce(
            "fitted",
            f"{name}: setting {number}/{len(settings)} valid ndcg@{k} {valid:.4f} "
            f"({train_seconds:.1f} s)",
            **where,
            valid=valid,
            seconds=train_seconds,
        )
        candidates.append((valid, params, model, train_seconds))
    best = max(range(len(candidates)), key=lambda i: candidates[i][0])
    valid, params, model, train_seconds = candidates[best]
    history = getattr(model, "history_", {}) or {}
    epochs = len(next(iter(history.values()), [])) if history else None
    if refit:
        params = refit_params(params, model)
        where = {"model": name, "setting": best + 1, "settings": len(settings), "refit": True}
        announce("setting", f"{name}: refit on train+valid {params}", **where)
        model, train_seconds = _fit(
            name,
            params,
            data.train_valid,
            data.seq_train_valid,
            data,
            where,
            validate=False,
            ages=data.ages_train_valid,
        )
        refit_history = getattr(model, "history_", {}) or {}
        epochs = len(next(iter(refit_history.values()), [])) if refit_history else None
    return Chosen(model, params, len(candidates), valid, epochs, train_seconds, history)


def evaluate_model(
    name: str,
    data: Prepared,
    k: int,
    grid: list[dict] | None = None,
    seed: int = 42,
    refit: bool = False,
) -> dict:
    """Tune ``name`` on validation (:func:`choose_model`), score the best setting once
    on test."""
    chosen = choose_model(name, data, k, grid, seed, refit)
    users, relevant = data.test_target
    recommended, scoring_seconds = _rank(
        chosen.model, users, k, data.train_valid, data.seq_train_valid
    )
    metrics = evaluate_rankings(recommended, relevant, k, train=data.train_valid)
    return {
        "model": name,
        "inputs": declared_inputs(name),
        "params": chosen.params,
        "tried": chosen.tried,
        f"valid_ndcg@{k}": chosen.valid,
        **{f"test_{m}": v for m, v in metrics.items()},
        "epochs": chosen.epochs,
        "train_seconds": round(chosen.train_seconds, 2),
        "scoring_seconds": round(scoring_seconds, 3),
        "refit": refit,
        "history": chosen.history,
    }


def refit_params(params: dict, model: Any) -> dict:
    """The setting to refit on train+valid: what the model chose on validation (the
    epochs where it stopped early, a blend weight) fixed, as its ``refit_params()``
    gives; a model that chose nothing refits with ``params``."""
    chosen = getattr(model, "refit_params", None)
    if chosen is None:
        return dict(params)
    fixed = chosen()
    changed = {key: value for key, value in fixed.items() if model.params.get(key) != value}
    return {**params, **changed}


def _fit(
    name: str,
    params: dict,
    matrix: Any,
    sequences: list,
    data: Prepared,
    where: dict,
    validate: bool = True,
    ages: Any = None,
) -> tuple[Any, float]:
    """A model ``name`` with ``params`` fitted on ``matrix``; its epochs announced."""
    from tasks.train import progress_callback

    model = make_recommender(name, **params)
    callback = progress_callback(model, stage="evaluate", **where)
    extra: dict[str, Any] = {"callbacks": [callback]} if callback is not None else {}
    if data.content is not None:
        extra["content"] = data.content
    start = time.perf_counter()
    model.fit(
        matrix,
        sequences,
        item_features=data.item_features,
        validation=data.valid_target if validate else None,
        social=data.social,
        ages=ages,
        **extra,
    )
    return model, time.perf_counter() - start


def announce(event: str, message: str, **fields: Any) -> None:
    """Log an evaluation event to ``recpipe.progress`` (``stage`` "evaluate"); models
    trained in epochs log each epoch there too (tasks/train.py ``progress_callback``)."""
    logging.getLogger("recpipe.progress").info(
        message, extra={"stage": "evaluate", "event": event, **fields}
    )


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
) -> pd.DataFrame:
    """One row per model, best test NDCG first. ``log(row)`` is called after each model.
    ``edges``: the relations between users the social models read (``direction``
    ``mutual`` or ``follows``); a social model without them is refused before any fit.
    ``catalogue``: the items' content, given to the models that read it."""
    check_social(models, edges)
    data = prepare(interactions, items, protocol, seed, edges, direction, catalogue, models)
    rows = []
    for name in models:
        row = evaluate_model(name, data, k, seed=seed, refit=refit)
        if log is not None:
            log(row, data)
        rows.append(row)
    frame = pd.DataFrame(rows).drop(columns=["history"])
    return frame.sort_values(f"test_ndcg@{k}", ascending=False, ignore_index=True)


def check_social(models: list[str], edges: pd.DataFrame | None) -> None:
    """A ``DataError`` when one of ``models`` needs the relations between users and
    there are none."""
    needs = [m for m in models if "social" in getattr(MODEL_CLASSES.get(m), "required_inputs", ())]
    if needs and edges is None:
        raise DataError(
            f"{', '.join(needs)} read(s) the relations between users, and none were given; "
            "expected an edges file or folder; pass --social-path (or set "
            "ingest.social.path), or leave the model out of --models"
        )


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
    (tasks/evaluation/new_items.py) and needs a catalogue with content.
    """
    from datetime import UTC, datetime

    from tasks import tracking
    from tasks.evaluation.catalogue import catalogue_from_source
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
        )
    client.set_terminated(parent)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    csv_path, json_path = write_leaderboard(frame, ws.root / "leaderboards" / f"{protocol}-{stamp}")
    return frame, csv_path, json_path
