"""Score: top-K recommendations for every active user, in blocks of bounded size.

Each user gets one strategy:

* ``personal``: the champion knows the user and they have at least
  ``min_history`` interactions it can read; it ranks every item;
* ``cold_start``: the champion does not know the user (new since it was
  trained) or their history is too short, but they touched some known items:
  items are ranked by content (genre profile of what they did) when the catalog
  has genres, else by co-occurrence with what they did;
* ``fallback``: nothing usable (or the champion is not personalised, like
  popularity): the most popular items of the last ``popular_days`` days.

Seen items, denied items and unavailable items are never recommended; an
optional cap limits items per primary genre. Each row gets a short ``reason``.
Blocks are yielded one at a time so the caller can stream them to disk: memory
holds one block of scores, not one per user.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from prefect import task
from prefect.cache_policies import NO_CACHE

from models import BaseRecommender
from models.ranking import top_k
from models.vocab import IdVocabulary
from tasks.catalog import Catalog, cap_per_genre
from tasks.config import ScoreConfig
from tasks.explain import reasons, supporting_items

TABLE_COLUMNS = [
    "run_id",
    "run_date",
    "user_id",
    "rank",
    "item_id",
    "score",
    "model_name",
    "model_version",
    "strategy",
    "reason",
]
SCORED_COLUMNS = ["user_id", "rank", "item_id", "score", "strategy", "reason"]


@dataclass(frozen=True)
class ScoringInputs:
    """Today's interactions mapped into the champion's item space."""

    users: IdVocabulary  # every user to score (raw ids)
    history: sp.csr_matrix  # users x champion items (binary)
    in_model: np.ndarray  # per user: index in the champion's user vocabulary, -1 unknown
    model_history: sp.csr_matrix  # champion users x champion items
    sequences: list[np.ndarray] | None  # per champion user, items in time order
    recent_popularity: np.ndarray  # per champion item


def prepare_inputs(
    interactions: pd.DataFrame,
    users: IdVocabulary,
    items: IdVocabulary,
    active_days: int | None = None,
    popular_days: int = 30,
    with_sequences: bool = False,
) -> ScoringInputs:
    """Map raw interactions (user_id, item_id[, timestamp]) into the champion's spaces."""
    frame = interactions
    has_time = "timestamp" in frame
    if has_time:
        frame = frame.sort_values("timestamp", kind="stable")
    active = frame
    if active_days is not None and has_time:
        newest = frame["timestamp"].max()
        recent_users = frame.loc[
            frame["timestamp"] > newest - pd.Timedelta(days=active_days), "user_id"
        ]
        active = frame[frame["user_id"].isin(recent_users)]
    all_users = IdVocabulary(active["user_id"])
    u = all_users.index(active["user_id"])
    i = items.index(active["item_id"])
    known = i >= 0
    history = _binary((u[known], i[known]), (len(all_users), len(items)))
    in_model = users.index(all_users.ids)
    rows = in_model >= 0
    selection = sp.csr_matrix(
        (np.ones(int(rows.sum()), dtype=np.float32), (in_model[rows], np.flatnonzero(rows))),
        shape=(len(users), len(all_users)),
    )
    model_history = (selection @ history).tocsr()
    model_history.data[:] = 1.0
    sequences = None
    if with_sequences:
        mu = users.index(active["user_id"])
        ok = known & (mu >= 0)
        sequences = [np.empty(0, dtype=np.int64)] * len(users)
        seq_frame = pd.DataFrame({"u": mu[ok], "i": i[ok]})
        for user, group in seq_frame.groupby("u", sort=False):
            sequences[int(user)] = group["i"].to_numpy(dtype=np.int64)
    recent = frame
    if has_time:
        recent = frame[
            frame["timestamp"] > frame["timestamp"].max() - pd.Timedelta(days=popular_days)
        ]
    ri = items.index(recent["item_id"])
    pairs = pd.DataFrame({"u": recent["user_id"].to_numpy(), "i": ri})[ri >= 0].drop_duplicates()
    popularity = np.bincount(pairs["i"].to_numpy(), minlength=len(items)).astype(np.float32)
    return ScoringInputs(all_users, history, in_model, model_history, sequences, popularity)


def _binary(coords: tuple[np.ndarray, np.ndarray], shape: tuple[int, int]) -> sp.csr_matrix:
    matrix = sp.csr_matrix((np.ones(len(coords[0]), dtype=np.float32), coords), shape=shape)
    matrix.data[:] = 1.0
    return matrix


def score_blocks(
    model: BaseRecommender,
    inputs: ScoringInputs,
    catalog: Catalog,
    k: int,
    batch_users: int = 1024,
    min_history: int = 1,
    max_per_genre: int | None = None,
    similarity: sp.csr_matrix | None = None,
    popular_days: int = 30,
) -> Iterator[pd.DataFrame]:
    """Yield ``SCORED_COLUMNS`` frames, one per block of users."""
    n_hist = np.diff(inputs.history.indptr)
    personal = (inputs.in_model >= 0) & (n_hist >= min_history) & model.personalized
    cold = ~personal & (n_hist > 0) & model.personalized
    fallback_reason = f"popular in the last {popular_days} days"
    for start in range(0, len(inputs.users), batch_users):
        block = np.arange(start, min(start + batch_users, len(inputs.users)))
        parts = []
        for mask, strategy in (
            (personal, "personal"),
            (cold, "cold_start"),
            (~personal & ~cold, "fallback"),
        ):
            rows = block[mask[block]]
            if rows.size == 0:
                continue
            history = inputs.history[rows]
            if strategy == "personal":
                extra = {} if inputs.sequences is None else {"sequences": inputs.sequences}
                scores = model.score(inputs.in_model[rows], history=inputs.model_history, **extra)
            elif strategy == "cold_start":
                scores = _content_scores(history, catalog, similarity, inputs.recent_popularity)
            else:
                scores = np.broadcast_to(inputs.recent_popularity, (rows.size, catalog.n_items))
            items, top = _rank(scores, history, catalog, k, max_per_genre)
            if strategy == "fallback":
                why = np.where(items >= 0, fallback_reason, None).astype(object)
            elif similarity is not None:
                why = reasons(
                    supporting_items(similarity, history, items), catalog.item_ids, catalog.titles
                )
            else:
                why = np.full(items.shape, None, dtype=object)
            parts.append(_frame(inputs.users.raw(rows), items, top, why, catalog, strategy))
        if parts:
            yield pd.concat(parts, ignore_index=True)


def _rank(
    scores: np.ndarray, history: sp.csr_matrix, catalog: Catalog, k: int, cap: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k after exclusions. A fresh, writeable float32 block is modified in place
    (models return new arrays, or read-only views such as popularity's broadcast)."""
    if not (scores.dtype == np.float32 and scores.flags.writeable):
        scores = np.array(scores, dtype=np.float32, copy=True)
    if catalog.blocked.any():
        scores[:, catalog.blocked] = -np.inf
    if cap is None:
        return top_k(scores, k, exclude=history, overwrite=True)
    candidates, cand_scores = top_k(
        scores, min(catalog.n_items, k * 4), exclude=history, overwrite=True
    )
    return cap_per_genre(candidates, cand_scores, catalog.genre, k, cap)


def _content_scores(
    history: sp.csr_matrix,
    catalog: Catalog,
    similarity: sp.csr_matrix | None,
    popularity: np.ndarray,
) -> np.ndarray:
    """Genre-profile cosine (or co-occurrence) with a small popularity tie-breaker."""
    tie = popularity / (popularity.max() + 1.0) * 1e-3
    if catalog.genre_vectors is not None:
        profile = history @ catalog.genre_vectors
        norms = np.linalg.norm(profile, axis=1, keepdims=True)
        profile = np.divide(profile, norms, out=np.zeros_like(profile), where=norms > 0)
        return profile @ catalog.genre_vectors.T + tie
    if similarity is not None:
        return np.asarray((history @ similarity.T).todense()) + tie
    return np.broadcast_to(tie, (history.shape[0], len(tie)))


def _frame(
    user_ids: np.ndarray,
    items: np.ndarray,
    scores: np.ndarray,
    why: np.ndarray,
    catalog: Catalog,
    strategy: str,
) -> pd.DataFrame:
    valid = items >= 0
    r, c = np.nonzero(valid)
    return pd.DataFrame(
        {
            "user_id": user_ids[r].astype(str),
            "rank": (c + 1).astype(np.int64),
            "item_id": catalog.item_ids[items[valid]].astype(str),
            "score": scores[valid].astype(np.float64),
            "strategy": strategy,
            "reason": pd.array(why[valid], dtype="str"),
        }
    )


def recommendations_table(
    scored: pd.DataFrame, run_id: str, run_date: date, model_name: str, model_version: str
) -> pd.DataFrame:
    """The published table's columns and types (see the README's table contract)."""
    n = len(scored)
    reason = scored["reason"] if "reason" in scored else pd.Series([None] * n)
    table = pd.DataFrame(
        {
            "run_id": pd.array([run_id] * n, dtype="str"),
            "run_date": pd.Series([run_date] * n, dtype="date32[pyarrow]"),
            "user_id": scored["user_id"].astype("str").to_numpy(),
            "rank": scored["rank"].astype("int64").to_numpy(),
            "item_id": scored["item_id"].astype("str").to_numpy(),
            "score": scored["score"].astype("float64").to_numpy(),
            "model_name": pd.array([model_name] * n, dtype="str"),
            "model_version": pd.array([model_version] * n, dtype="str"),
            "strategy": scored["strategy"].astype("str").to_numpy(),
            "reason": pd.array(reason.to_numpy(), dtype="str"),
        }
    )
    return table[TABLE_COLUMNS]


def score_users(
    model: BaseRecommender,
    users: IdVocabulary,
    items: IdVocabulary,
    interactions: pd.DataFrame,
    k: int,
    batch_users: int = 1024,
) -> pd.DataFrame:
    """All recommendations at once, without business rules or explanations (evaluation)."""
    from tasks.catalog import build_catalog

    inputs = prepare_inputs(
        interactions, users, items, with_sequences="sequences" in getattr(model, "fit_inputs", ())
    )
    catalog = build_catalog(items, None, set())
    frames = list(score_blocks(model, inputs, catalog, k, batch_users))
    if not frames:
        return pd.DataFrame(columns=SCORED_COLUMNS)
    return pd.concat(frames, ignore_index=True)


@task(name="score", cache_policy=NO_CACHE)
def score_task(
    validated_path: str,
    items_path: str | None,
    registered_name: str,
    workspace_root: str,
    config: ScoreConfig,
    run_id: str,
    run_date: date,
    out_dir: str,
) -> dict:
    """Score every active user with the champion; write recommendations and similar items."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tasks import tracking
    from tasks.catalog import build_catalog, read_deny_list
    from tasks.explain import cooccurrence_similarity, similar_items_table
    from tasks.workspace import Workspace

    client = tracking.client_for(Workspace.at(workspace_root))
    champion, version = tracking.load_champion(client, registered_name)
    model, users, items = champion.model, champion.users, champion.items
    interactions = pd.read_parquet(validated_path, columns=["user_id", "item_id", "timestamp"])
    catalog_frame = pd.read_parquet(items_path) if items_path else None
    catalog = build_catalog(
        items,
        catalog_frame,
        read_deny_list(config.deny_list_path, config.deny_items),
        config.respect_available,
    )
    inputs = prepare_inputs(
        interactions,
        users,
        items,
        config.active_days,
        config.popular_days,
        with_sequences="sequences" in getattr(model, "fit_inputs", ()),
    )
    start = time.perf_counter()
    similarity = None
    if config.explain:
        full = (
            inputs.history
            if config.active_days is None
            else prepare_inputs(interactions, users, items).history
        )
        similarity = cooccurrence_similarity(full, config.neighbours, config.shrinkage)
    out = Path(out_dir)
    path, rows, strategies = out / "recommendations.parquet", 0, {}
    writer = None
    try:
        for block in score_blocks(
            model,
            inputs,
            catalog,
            config.k,
            config.batch_users,
            config.min_history,
            config.max_per_genre,
            similarity,
            config.popular_days,
        ):
            frame = recommendations_table(block, run_id, run_date, model.name, version)
            batch = pa.Table.from_pandas(frame, preserve_index=False)
            writer = writer or pq.ParquetWriter(path, batch.schema)
            writer.write_table(batch)
            rows += len(frame)
            for strategy, n in frame.drop_duplicates("user_id")["strategy"].value_counts().items():
                strategies[str(strategy)] = strategies.get(str(strategy), 0) + int(n)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        recommendations_table(
            pd.DataFrame(columns=SCORED_COLUMNS), run_id, run_date, model.name, version
        ).to_parquet(path, index=False)
    seconds = time.perf_counter() - start
    similar_path = None
    if similarity is not None:
        similar = similar_items_table(similarity, catalog.item_ids, config.similar_k)
        similar.insert(0, "run_date", pd.Series([run_date] * len(similar), dtype="date32[pyarrow]"))
        similar.insert(0, "run_id", run_id)
        similar_path = out / "similar_items.parquet"
        similar.to_parquet(similar_path, index=False)
    n_users = sum(strategies.values())
    items_vocab_path = out / "champion_items.json"
    items_vocab_path.write_text(items.to_json())
    return {
        "path": str(path),
        "items_vocab_path": str(items_vocab_path),
        "similar_path": str(similar_path) if similar_path else None,
        "rows": rows,
        "users": n_users,
        "model": model.name,
        "version": version,
        "users_by_strategy": strategies,
        "seconds": round(seconds, 2),
        "users_per_second": round(n_users / seconds, 1) if seconds > 0 else None,
    }
