"""Evaluate: full-ranking metrics of a model bundle on the temporal hold-out.

Every model, tonight's challengers and the current champion alike, is evaluated
through the same ranking as the published scoring (``tasks.scoring.ranking.rank_blocks``):
its own vocabularies map today's ids, users it does not know get the cold-start
fallback, seen items are excluded. So the figures compare what each model would
actually publish, on the same users and the same hold-out items. The work is
done on the feature snapshot's integer codes; only the two vocabularies are
mapped into the model's, once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from prefect import task
from prefect.cache_policies import NO_CACHE

from models import BaseRecommender
from models.inputs import sequences_from_events
from models.metrics import evaluate_rankings
from models.vocab import IdVocabulary
from tasks.config import EvaluateConfig
from tasks.data.catalog import build_catalog
from tasks.data.parallel import available_cpus
from tasks.data.snapshot import FeatureSet
from tasks.scoring.inputs import ScoringInputs, binary_matrix, model_rows
from tasks.scoring.ranking import rank_blocks
from tasks.train import TrainedModel

PER_USER_FILE = "holdout_per_user.parquet"  # beside the saved model: what the gate pairs


@dataclass(frozen=True)
class Holdout:
    """The evaluated users' training history and new hold-out items, in the codes of the
    feature snapshot's vocabularies (``users``, ``items``): no raw id is touched per event."""

    users: IdVocabulary  # the feature snapshot's user vocabulary
    items: IdVocabulary  # the feature snapshot's item vocabulary
    train: pd.DataFrame  # user_idx, item_idx, timestamp: the evaluated users' events
    relevant: pd.DataFrame  # user_idx, item_idx: validation items new to the user
    population: int | None = None  # hold-out users sampled from (None: all are evaluated)

    @property
    def n_users(self) -> int:
        return int(self.relevant["user_idx"].nunique())

    def sample(self, n: int | None, seed: int = 0) -> Holdout:
        """This hold-out on a seeded sample of ``n`` of its users (itself when it has no
        more). The sample depends only on the users, ``n`` and ``seed``, so every model
        evaluated on the same snapshot, and the champion re-scored, meet the same users."""
        users = np.unique(self.relevant["user_idx"].to_numpy())
        if n is None or len(users) <= n:
            return self
        chosen = np.zeros(len(self.users), dtype=bool)
        chosen[np.random.default_rng(seed).choice(users, size=n, replace=False)] = True
        return Holdout(
            users=self.users,
            items=self.items,
            train=self.train[chosen[self.train["user_idx"].to_numpy()]].reset_index(drop=True),
            relevant=self.relevant[chosen[self.relevant["user_idx"].to_numpy()]].reset_index(
                drop=True
            ),
            population=len(users),
        )


def holdout_from_features(features: FeatureSet) -> Holdout:
    """Users with training history and at least one validation item new to them (events
    that are not positives count as history: seen, never relevant)."""
    history = features.train
    if features.seen is not None and len(features.seen):
        history = pd.concat([features.train, features.seen], ignore_index=True)
    return _holdout([(history, features.valid)], features.users, features.items)


def holdout_from_snapshot(
    directory: Path | str, sample: int | None = None, seed: int = 0
) -> Holdout:
    """:func:`holdout_from_features` of the snapshot in ``directory``, one user partition
    at a time (part i of train and of valid hold the same users); with ``sample``, on the
    users :meth:`Holdout.sample` would choose, reading the history of those users only."""
    from tasks.data.snapshot import read_vocabularies, table_parts

    users, items = read_vocabularies(Path(directory))
    train, valid = table_parts(directory, "train"), table_parts(directory, "valid")
    if len(train) != len(valid):
        raise ValueError(
            f"{directory}: {len(train)} train parts but {len(valid)} valid parts; expected "
            "one of each per user partition; rebuild the feature snapshot"
        )
    seen = table_parts(directory, "seen") if (Path(directory) / "seen.parquet").exists() else []

    def history(i: int, columns: list[str]) -> pd.DataFrame:
        frames = [pd.read_parquet(train[i], columns=columns)]
        if seen:
            frames.append(pd.read_parquet(seen[i], columns=columns))
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    columns = ["user_idx", "item_idx", "timestamp"]
    parts = range(len(valid))
    if sample is None:
        pairs = ((history(i, columns), pd.read_parquet(valid[i], columns=columns)) for i in parts)
        return _holdout(pairs, users, items)
    # First the hold-out items of every user (small: no timestamps, no history kept) ...
    relevant = pd.concat(
        [
            _new_pairs(
                history(i, columns[:2]),
                pd.read_parquet(valid[i], columns=columns[:2]),
                len(users),
                len(items),
            )
            for i in parts
        ],
        ignore_index=True,
    )
    candidates = np.unique(relevant["user_idx"].to_numpy())
    if len(candidates) <= sample:
        pairs = ((history(i, columns), pd.read_parquet(valid[i], columns=columns)) for i in parts)
        return _holdout(pairs, users, items)
    # ... then the history of the users drawn, as Holdout.sample draws them.
    chosen = np.zeros(len(users), dtype=bool)
    chosen[np.random.default_rng(seed).choice(candidates, size=sample, replace=False)] = True
    trains = []
    for i in parts:
        frame = history(i, columns)
        trains.append(frame[chosen[frame["user_idx"].to_numpy()]])
    return Holdout(
        users=users,
        items=items,
        train=pd.concat(trains, ignore_index=True),
        relevant=relevant[chosen[relevant["user_idx"].to_numpy()]].reset_index(drop=True),
        population=len(candidates),
    )


def _new_pairs(
    train: pd.DataFrame, valid: pd.DataFrame, n_users: int, n_items: int
) -> pd.DataFrame:
    """The distinct (user, item) pairs of ``valid`` new to a user with history in ``train``."""
    pairs = valid[["user_idx", "item_idx"]].drop_duplicates()
    seen_keys = train["user_idx"].to_numpy(np.int64) * n_items + train["item_idx"].to_numpy()
    keys = pairs["user_idx"].to_numpy(np.int64) * n_items + pairs["item_idx"].to_numpy()
    has_train = np.zeros(n_users, dtype=bool)
    has_train[train["user_idx"].to_numpy()] = True
    return pairs[~np.isin(keys, seen_keys) & has_train[pairs["user_idx"].to_numpy()]]


def _holdout(
    parts: Iterable[tuple[pd.DataFrame, pd.DataFrame]], users: IdVocabulary, items: IdVocabulary
) -> Holdout:
    """The hold-out of (train, valid) parts that each hold all events of their users."""
    trains, relevants = [], []
    for train, valid in parts:
        new = _new_pairs(train, valid, len(users), len(items))
        evaluated = np.zeros(len(users), dtype=bool)
        evaluated[new["user_idx"].to_numpy()] = True
        trains.append(
            train.loc[
                evaluated[train["user_idx"].to_numpy()], ["user_idx", "item_idx", "timestamp"]
            ]
        )
        relevants.append(new)
    return Holdout(
        users=users,
        items=items,
        train=pd.concat(trains, ignore_index=True),
        relevant=pd.concat(relevants, ignore_index=True),
    )


def holdout_inputs(
    model: BaseRecommender,
    users: IdVocabulary,
    items: IdVocabulary,
    holdout: Holdout,
    popular_days: int = 30,
) -> tuple[ScoringInputs, np.ndarray, np.ndarray]:
    """The evaluated users' histories in the model's spaces, as ``score_users`` would map
    them from raw ids (vocabularies are mapped once, not per event); the item index of
    each feature item in the model's items (-1 unknown); and each feature user's row in
    the inputs (-1: not evaluated)."""
    to_model_user = users.index(holdout.users.ids)
    to_model_item = items.index(holdout.items.ids)
    evaluated = np.unique(holdout.relevant["user_idx"].to_numpy())
    row_of = np.full(len(holdout.users), -1, dtype=np.int64)
    row_of[evaluated] = np.arange(len(evaluated))
    u = row_of[holdout.train["user_idx"].to_numpy()]
    i = to_model_item[holdout.train["item_idx"].to_numpy()]
    known = i >= 0
    history = binary_matrix((u[known], i[known]), (len(evaluated), len(items)))
    in_model = to_model_user[evaluated]
    model_history = model_rows(history, in_model, len(users))
    timestamps = holdout.train["timestamp"]
    sequences = None
    if "sequences" in getattr(model, "fit_inputs", ()):
        mu = in_model[u]
        ok = known & (mu >= 0)
        sequences = sequences_from_events(mu[ok], i[ok], timestamps.to_numpy()[ok], len(users))
    recent = known & (timestamps > timestamps.max() - pd.Timedelta(days=popular_days)).to_numpy()
    pairs = np.unique(u[recent] * np.int64(len(items)) + i[recent])
    popularity = np.bincount(pairs % len(items), minlength=len(items)).astype(np.float32)
    inputs = ScoringInputs(None, history, in_model, model_history, sequences, popularity)
    return inputs, to_model_item, row_of


def evaluate_per_user(
    model: BaseRecommender,
    users: IdVocabulary,
    items: IdVocabulary,
    holdout: Holdout,
    k: int,
    batch_users: int = 1024,
) -> tuple[dict[str, float], pd.DataFrame]:
    """Every ranking metric (and the scoring time) of ``model`` on ``holdout``, and each
    evaluated user's ``ndcg@k`` and ``recall@k`` (``user_idx`` in the feature snapshot's
    codes, ascending): what the gate pairs."""
    if holdout.relevant.empty:
        raise ValueError(
            "evaluate: no user has both training history and new validation items; "
            "widen features.validation_days or check the temporal split"
        )
    start = time.perf_counter()
    inputs, to_model_item, row_of = holdout_inputs(model, users, items, holdout)
    n_evaluated = inputs.history.shape[0]
    recommended = np.full((n_evaluated, k), -1, dtype=np.int64)
    catalog = build_catalog(items, None, set())
    blocks = rank_blocks(model, inputs, catalog, k, batch_users, threads=available_cpus())
    for rows, _, ranked, _, _ in blocks:
        recommended[rows, : ranked.shape[1]] = ranked
    seconds = time.perf_counter() - start
    # Items: the model's, then hold-out items it does not know (relevant, never recommended).
    relevant_items = holdout.relevant["item_idx"].to_numpy()
    unknown = np.unique(relevant_items[to_model_item[relevant_items] < 0])
    column = to_model_item.copy()
    column[unknown] = len(items) + np.arange(len(unknown))
    n_columns = len(items) + len(unknown)
    relevant = binary_matrix(
        (row_of[holdout.relevant["user_idx"].to_numpy()], column[relevant_items]),
        (n_evaluated, n_columns),
    )
    c = column[holdout.train["item_idx"].to_numpy()]
    train = binary_matrix(
        (row_of[holdout.train["user_idx"].to_numpy()][c >= 0], c[c >= 0]),
        (n_evaluated, n_columns),
    )
    metrics = evaluate_rankings(recommended, relevant, k, train=train, n_items=len(items))
    metrics["scoring_seconds"] = round(seconds, 3)
    ndcg, recall = per_user_metrics(recommended, relevant, k)
    per_user = pd.DataFrame(
        {
            "user_idx": np.flatnonzero(row_of >= 0).astype(np.int64),
            f"ndcg@{k}": ndcg,
            f"recall@{k}": recall,
        }
    )
    return metrics, per_user


def new_items_figures(
    model: BaseRecommender,
    users: IdVocabulary,
    items: IdVocabulary,
    holdout: Holdout,
    features_dir: str | Path,
    k: int,
) -> dict[str, float]:
    """The new-items protocol on the night's own hold-out, for a model that scores items
    from their content: the hold-out items with no training event at all (released or
    first chosen in the hold-out period) ranked among themselves, from their content
    (``score_content``), for the evaluated users who chose one; beside a random ranking of
    the same items. Keys ``new_items_<metric>@k``, ``new_items_random_ndcg@k``,
    ``new_items_users`` and ``new_items_items``; none for another model, without content
    features or without such items."""
    from models.content import ContentScoring
    from tasks.data.content_features import item_content
    from tasks.data.snapshot import table_parts
    from tasks.evaluation.new_items import random_reference, rank_new_items

    if not isinstance(model, ContentScoring) or not model.reads_content():
        return {}
    content = item_content(features_dir)
    if content is None or len(content) < len(holdout.items):
        return {}
    trained = np.zeros(len(holdout.items), dtype=bool)
    for part in table_parts(features_dir, "train"):
        trained[pd.read_parquet(part, columns=["item_idx"])["item_idx"].unique()] = True
    cold = holdout.relevant[~trained[holdout.relevant["item_idx"].to_numpy()]]
    if cold.empty:
        return {}
    new_items = np.unique(cold["item_idx"].to_numpy())  # content rows: the vocabulary's
    inputs, _, row_of = holdout_inputs(model, users, items, holdout)
    rows = np.unique(row_of[cold["user_idx"].to_numpy()])
    column = np.full(len(holdout.items), -1, dtype=np.int64)
    column[new_items] = np.arange(len(new_items))
    position = np.full(len(row_of), -1, dtype=np.int64)
    position[rows] = np.arange(len(rows))
    relevant = binary_matrix(
        (position[row_of[cold["user_idx"].to_numpy()]], column[cold["item_idx"].to_numpy()]),
        (len(rows), len(new_items)),
    )
    ranked, _ = rank_new_items(
        model, np.arange(len(rows)), inputs.history[rows], content.rows(new_items), k
    )
    if ranked is None:
        return {}
    figures = evaluate_rankings(ranked, relevant, k, n_items=len(new_items))
    out = {f"new_items_{name}": float(value) for name, value in figures.items() if "@" in name}
    out[f"new_items_random_ndcg@{k}"] = random_reference(relevant, k)[f"ndcg@{k}"]
    out["new_items_users"] = float(len(rows))
    out["new_items_items"] = float(len(new_items))
    return out


def per_user_metrics(
    recommended: np.ndarray, relevant: sp.csr_matrix, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """NDCG@k and Recall@k of each row (binary gains, log2 discount; the same definitions
    as ``models.metrics``, whose means over users with a relevant item they give)."""
    relevant = sp.csr_matrix(relevant)
    top = recommended[:, :k]
    rows = np.repeat(np.arange(top.shape[0]), top.shape[1])
    cols = top.ravel()
    ok = cols >= 0
    hits = np.zeros(top.shape, dtype=bool)
    hits.ravel()[ok] = np.asarray(relevant[rows[ok], cols[ok]]).ravel() > 0
    n_rel = np.diff(relevant.indptr)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discounts[: top.shape[1]]).sum(axis=1)
    idcg = np.cumsum(discounts)[np.clip(np.minimum(n_rel, k) - 1, 0, None)]
    with np.errstate(invalid="ignore", divide="ignore"):
        ndcg = np.where(n_rel > 0, dcg / idcg, np.nan)
        recall = np.where(n_rel > 0, hits.sum(axis=1) / np.maximum(n_rel, 1), np.nan)
    return ndcg, recall


def _run_name(parameters: dict) -> str:
    """``evaluate-<model>``: the Prefect task run of one model's evaluation."""
    return f"evaluate-{getattr(parameters.get('trained'), 'model', 'model')}"


def sampled_holdout(features_dir: str, config: EvaluateConfig) -> Holdout:
    """The snapshot's hold-out on the seeded sample of users ``config`` sizes."""
    return holdout_from_snapshot(features_dir, config.sample_users, config.seed)


def holdout_figures(holdout: Holdout) -> dict[str, int]:
    """What the evaluation stood on: hold-out events, and users evaluated out of all."""
    n_users = holdout.n_users
    return {
        "n_events": len(holdout.relevant),
        "holdout_users": holdout.population or n_users,
        "evaluated_users": n_users,
    }


class ModelResult(TrainedModel):
    """A model of the night with its figures on the hold-out; ``per_user_path``: each
    evaluated user's figures (what the gate pairs), beside the saved model."""

    metrics: dict[str, float]
    per_user_path: str | None = None


def evaluate(
    trained: TrainedModel, features_dir: str, config: EvaluateConfig, workspace_root: str
) -> ModelResult:
    """Every ranking metric of a trained model on the snapshot's (sampled) hold-out,
    logged to its MLflow run; the per-user figures written beside its bundle."""
    from models.vocab import load_bundle
    from tasks import tracking
    from tasks.storage.workspace import Workspace
    from tasks.tracking import ui

    holdout = sampled_holdout(features_dir, config)
    model, users, items = load_bundle(trained.bundle_dir)
    metrics, per_user = evaluate_per_user(model, users, items, holdout, config.k)
    metrics.update(holdout_figures(holdout))
    metrics.update(new_items_figures(model, users, items, holdout, features_dir, config.k))
    per_user_path = Path(trained.bundle_dir) / PER_USER_FILE
    per_user.to_parquet(per_user_path, index=False)
    client = tracking.client_for(Workspace.at(workspace_root))
    tracking.log_metrics(client, trained.run_id, metrics)
    # MLflow's runs table (opened through recpipe's view) shows the metrics just logged.
    ui.set_runs_view(client, client.get_run(trained.run_id).info.experiment_id, list(metrics))
    return ModelResult(**trained.summary(), metrics=metrics, per_user_path=str(per_user_path))


# Prefect's TaskRunNameCallbackWithParameters protocol includes a classmethod, so no plain
# function matches it; Prefect calls a callback that takes ``parameters`` with them.
evaluate_task = task(name="evaluate", task_run_name=_run_name, cache_policy=NO_CACHE)(evaluate)  # type: ignore[arg-type]
