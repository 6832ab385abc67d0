"""One model fitted and scored on one split: what every leaderboard shares.

:func:`prepare` splits interactions by a protocol (tasks/data/splits.py) and builds every
fit input (:class:`Prepared`); :func:`choose_model` fits each setting of a model's grid
on training and keeps the best on validation NDCG@K (optionally fitted again on
train+valid); :func:`evaluate_model` also scores it once on test. ``recpipe evaluate``'s
leaderboards (flows/bench/leaderboard.py, and the new-items protocol's,
flows/bench/new_items.py) are built from these.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
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
    user_content: ItemContent | None = None  # users' attributes, row u the split's user u


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
    users: CatalogueContent | None = None,
) -> Prepared:
    """The split of ``interactions`` by ``protocol`` and every fit input built from it;
    the typed item content (``content``) when ``catalogue`` has some and one of
    ``models`` reads it; the users' attributes (``user_content``) when ``users`` (the
    source's users table, :func:`tasks.evaluation.catalogue.users_catalogue`) has some
    and one of ``models`` reads them."""
    s = split(interactions, protocol, seed)
    content = None
    if catalogue and reads_content(models or []):
        content = catalogue.content(s.items.ids)
    user_content = users_content(users, s, models or [])
    return prepare_split(s, items, edges, direction, content, user_content)


def reads_content(models: list[str], name: str = "content") -> bool:
    """Whether one of ``models`` takes ``name`` (default the typed item content) in ``fit``."""
    return any(name in getattr(MODEL_CLASSES.get(m), "fit_inputs", ()) for m in models)


def users_content(users: CatalogueContent | None, s: Split, models: list[str]) -> Any:
    """The ``user_content`` fit input of split ``s`` (row u: its user u's attributes; a
    user missing from the users table has none), when ``users`` has attributes and one
    of ``models`` reads them; else None."""
    if not users or not reads_content(models, "user_content"):
        return None
    return users.content(s.users.ids)


def prepare_split(
    s: Split,
    items: pd.DataFrame | None,
    edges: pd.DataFrame | None = None,
    direction: str = "mutual",
    content: ItemContent | None = None,
    user_content: ItemContent | None = None,
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
        user_content=user_content,
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
    return leaderboard_row(name, chosen, metrics, k, scoring_seconds, refit)


def leaderboard_row(
    name: str,
    chosen: Chosen,
    metrics: dict,
    k: int,
    scoring_seconds: float,
    refit: bool,
    **extra: Any,
) -> dict:
    """A leaderboard's row of ``name``: the setting ``chosen`` on validation, its test
    ``metrics`` (as ``test_<metric>``), its times; ``extra`` columns after ``inputs``."""
    return {
        "model": name,
        "inputs": declared_inputs(name),
        **extra,
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
    if data.user_content is not None:
        extra["user_content"] = data.user_content
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
