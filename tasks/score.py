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

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from prefect import task
from prefect.cache_policies import NO_CACHE

from models import BaseRecommender
from models.ranking import top_k
from models.vocab import IdVocabulary
from tasks.config import ScoreConfig
from tasks.data.catalog import Catalog, build_catalog, cap_per_genre
from tasks.data.explain import reasons, supporting_items
from tasks.parallel import available_cpus, in_order
from tasks.storage.cache import StageResult
from tasks.storage.faults import checkpoint

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

    users: IdVocabulary | None  # raw ids of the rows (None when only codes are needed)
    history: sp.csr_matrix  # users x champion items (binary)
    in_model: np.ndarray  # per user: index in the champion's user vocabulary, -1 unknown
    model_history: sp.csr_matrix  # champion users x champion items
    sequences: list[np.ndarray] | None  # per champion user, items in time order
    recent_popularity: np.ndarray  # per champion item
    # users x champion items: the events that count as positive (reasons name only
    # these); None when every event does
    positive: sp.csr_matrix | None = None


def prepare_inputs(
    interactions: pd.DataFrame,
    users: IdVocabulary,
    items: IdVocabulary,
    active_days: int | None = None,
    popular_days: int = 30,
    with_sequences: bool = False,
    newest: pd.Timestamp | None = None,
    popularity: np.ndarray | None = None,
    positive: tuple[str, float] | None = None,
) -> ScoringInputs:
    """Map raw interactions (user_id, item_id[, timestamp]) into the champion's spaces.

    ``interactions`` may hold a shard of the users (all of each user's events); then
    ``newest`` (the newest event of all shards) and ``popularity`` (summed over all
    shards, see ``recent_popularity``) make "the last N days" the same for every shard.
    ``positive``: the rule and threshold of ``features.positive``
    (``tasks/data/positives.py``); with it, events that are not positive stay in the
    history (seen: never recommended back) but not in ``ScoringInputs.positive``, the
    items reasons may name.
    """
    frame = interactions
    has_time = "timestamp" in frame
    if has_time:
        frame = frame.sort_values("timestamp", kind="stable")
        if newest is None and len(frame):
            newest = frame["timestamp"].max()
    active = frame
    if active_days is not None and has_time and newest is not None:
        recent_users = frame.loc[
            frame["timestamp"] > newest - pd.Timedelta(days=active_days), "user_id"
        ]
        active = frame[frame["user_id"].isin(recent_users)]
    all_users = IdVocabulary(active["user_id"])
    u = all_users.index(active["user_id"])
    i = items.index(active["item_id"])
    known = i >= 0
    history = binary_matrix((u[known], i[known]), (len(all_users), len(items)))
    in_model = users.index(all_users.ids)
    model_history = model_rows(history, in_model, len(users))
    sequences = None
    if with_sequences:
        mu = users.index(active["user_id"])
        ok = known & (mu >= 0)
        sequences = [np.empty(0, dtype=np.int64)] * len(users)
        seq_frame = pd.DataFrame({"u": mu[ok], "i": i[ok]})
        for user, group in seq_frame.groupby("u", sort=False):
            sequences[int(user)] = group["i"].to_numpy(dtype=np.int64)
    if popularity is None:
        popularity = recent_popularity(frame, items, newest, popular_days)
    liked = None
    if positive is not None and positive[0] != "all" and "value" in active:
        from tasks.data.positives import positive_mask

        keep = known & positive_mask(active, positive[0], positive[1])
        liked = binary_matrix((u[keep], i[keep]), (len(all_users), len(items)))
    return ScoringInputs(all_users, history, in_model, model_history, sequences, popularity, liked)


def model_rows(history: sp.csr_matrix, in_model: np.ndarray, n_model_users: int) -> sp.csr_matrix:
    """``history`` (one row per scored user) moved to the model's user rows: row
    ``in_model[r]`` gets row ``r``; users the model does not know (-1) are left out."""
    rows = in_model >= 0
    selection = sp.csr_matrix(
        (np.ones(int(rows.sum()), dtype=np.float32), (in_model[rows], np.flatnonzero(rows))),
        shape=(n_model_users, len(in_model)),
    )
    moved = (selection @ history).tocsr()
    moved.data[:] = 1.0
    return moved


def recent_popularity(
    interactions: pd.DataFrame,
    items: IdVocabulary,
    newest: pd.Timestamp | None,
    popular_days: int,
) -> np.ndarray:
    """Distinct users per item in the ``popular_days`` before ``newest`` (all time without
    timestamps). Adds up over shards of disjoint users."""
    recent = interactions
    if "timestamp" in recent and newest is not None:
        recent = recent[recent["timestamp"] > newest - pd.Timedelta(days=popular_days)]
    ri = items.index(recent["item_id"])
    pairs = pd.DataFrame({"u": recent["user_id"].to_numpy(), "i": ri})[ri >= 0].drop_duplicates()
    return np.bincount(pairs["i"].to_numpy(), minlength=len(items)).astype(np.float32)


def user_item_matrix(interactions: pd.DataFrame, items: IdVocabulary) -> sp.csr_matrix:
    """Binary users (in order of first appearance) x ``items``; unknown items left out."""
    u, _ = pd.factorize(interactions["user_id"])
    i = items.index(interactions["item_id"])
    known = i >= 0
    return binary_matrix((u[known], i[known]), (int(u.max()) + 1 if len(u) else 0, len(items)))


def binary_matrix(coords: tuple[np.ndarray, np.ndarray], shape: tuple[int, int]) -> sp.csr_matrix:
    matrix = sp.csr_matrix((np.ones(len(coords[0]), dtype=np.float32), coords), shape=shape)
    matrix.data[:] = 1.0
    return matrix


def rank_blocks(
    model: BaseRecommender,
    inputs: ScoringInputs,
    catalog: Catalog,
    k: int,
    batch_users: int = 1024,
    min_history: int = 1,
    max_per_genre: int | None = None,
    similarity: sp.csr_matrix | None = None,
    threads: int = 1,
) -> Iterator[tuple[np.ndarray, str, np.ndarray, np.ndarray, sp.csr_matrix]]:
    """``(rows, strategy, items, scores, history)`` per block of users and strategy: the
    users' positions in ``inputs``, the top-k item indices (-1 where fewer than k) and
    their scores, and the rows' histories. The codes before any raw id is looked up.

    ``threads`` blocks are scored and ranked at once (the products and the selection
    release the GIL), and yielded in order; a model without ``concurrent_scoring`` is
    called one block at a time, its blocks' ranking still overlapping."""
    n_hist = np.diff(inputs.history.indptr)
    personal = (inputs.in_model >= 0) & (n_hist >= min_history) & model.personalized
    cold = ~personal & (n_hist > 0) & model.personalized
    n_users = inputs.history.shape[0]
    guard = threading.Lock() if threads > 1 and not model.concurrent_scoring else nullcontext()

    def ranked(start: int) -> list[tuple]:
        block = np.arange(start, min(start + batch_users, n_users))
        out = []
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
                with guard:
                    scores = model.score(
                        inputs.in_model[rows], history=inputs.model_history, **extra
                    )
            elif strategy == "cold_start":
                scores = _content_scores(history, catalog, similarity, inputs.recent_popularity)
            else:
                scores = np.broadcast_to(inputs.recent_popularity, (rows.size, catalog.n_items))
            items, top = _rank(scores, history, catalog, k, max_per_genre)
            out.append((rows, strategy, items, top, history))
        return out

    for block in in_order(ranked, range(0, n_users, batch_users), threads):
        yield from block


def scoring_threads(config: ScoreConfig) -> int:
    """``config.threads``, or with 0 the CPUs this process may run on."""
    return config.threads or available_cpus()


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
    threads: int = 1,
) -> Iterator[pd.DataFrame]:
    """Yield ``SCORED_COLUMNS`` frames, one per block of users."""
    fallback_reason = f"popular in the last {popular_days} days"
    parts, current = [], None
    ranked = rank_blocks(
        model, inputs, catalog, k, batch_users, min_history, max_per_genre, similarity, threads
    )
    for rows, strategy, items, top, history in ranked:
        block = rows[0] // batch_users
        if parts and block != current:
            yield pd.concat(parts, ignore_index=True)
            parts = []
        current = block
        if strategy == "fallback":
            why = np.where(items >= 0, fallback_reason, None).astype(object)
        elif similarity is not None:
            liked = None if inputs.positive is None else inputs.positive[rows]
            why = reasons(
                supporting_items(similarity, history, items, positive=liked),
                catalog.item_ids,
                catalog.titles,
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
    inputs = prepare_inputs(
        interactions, users, items, with_sequences="sequences" in getattr(model, "fit_inputs", ())
    )
    catalog = build_catalog(items, None, set())
    frames = list(score_blocks(model, inputs, catalog, k, batch_users))
    if not frames:
        return pd.DataFrame(columns=SCORED_COLUMNS)
    return pd.concat(frames, ignore_index=True)


# -- the nightly scoring stage: plan, score each user shard, finish ----------------------
@dataclass(frozen=True)
class ScoringPlan:
    """What every shard task needs, as paths and plain values (it travels to Dask workers)."""

    workspace_root: str
    registered_name: str
    version: str  # the champion version resolved once for the whole run
    model_run: str  # its MLflow run
    model_name: str
    items_path: str | None
    config: ScoreConfig
    run_id: str
    run_date: date
    out_dir: str
    shards: list[str]
    newest: str | None
    popularity_path: str
    similarity_path: str | None
    items_vocab_path: str
    positive: tuple[str, float] | None = None  # features.positive and its threshold
    plan_seconds: float = 0.0  # planning's own time (the shards' work is not in it)
    similarity_cached: bool = False  # read from the similarity cache, not summed again


def plan_scoring(
    validated_path: str,
    items_path: str | None,
    registered_name: str,
    workspace_root: str,
    config: ScoreConfig,
    run_id: str,
    run_date: date,
    out_dir: str,
    version: str | None = None,
    positive: tuple[str, float] | None = None,
) -> ScoringPlan:
    """Resolve the model (``version``, the one the night's promotion decided on; else the
    champion), split the users into shards, and compute what all shards share: recent
    popularity and (with explanations) item-item similarity, both summed shard by shard;
    write the similar-items table."""
    from tasks import tracking
    from tasks.data.explain import similar_items_table
    from tasks.data.shards import shard_interactions
    from tasks.storage.workspace import Workspace

    start = time.perf_counter()
    client = tracking.client_for(Workspace.at(workspace_root))
    version = version or tracking.champion_version_or_fail(client, registered_name)
    model_run = client.get_model_version(registered_name, version).run_id
    model_name, items = tracking.version_catalog(
        workspace_root, registered_name, version, model_run
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shards = shard_interactions(validated_path, out / "shards", config.shard_rows)
    newest = shards.newest_timestamp
    cache = SimilarityCache(Workspace.at(workspace_root).similarity_cache, validated_path, items)
    similarity = cache.get(config) if config.explain else None
    popularity, computed = shard_totals(
        shards.paths, items, newest, config, similarity=similarity is None
    )
    cached = similarity is not None
    if computed is not None:
        similarity = cache.put(config, computed)
    popularity_path = out / "recent_popularity.npy"
    np.save(popularity_path, popularity)
    similarity_path = None
    for stale in (out / "similarity.npz", out / "similar_items.parquet"):
        stale.unlink(missing_ok=True)
    if similarity is not None:
        similarity_path = out / "similarity.npz"
        sp.save_npz(similarity_path, similarity, compressed=False)  # read back by each shard
        catalog = build_catalog(items, None, set())
        similar = similar_items_table(similarity, catalog.item_ids, config.similar_k)
        similar.insert(0, "run_date", pd.Series([run_date] * len(similar), dtype="date32[pyarrow]"))
        similar.insert(0, "run_id", run_id)
        similar.to_parquet(out / "similar_items.parquet", index=False)
    items_vocab_path = out / "champion_items.json"
    items_vocab_path.write_text(items.to_json())
    parts = out / "recommendations"
    if parts.exists():
        shutil.rmtree(parts)
    parts.mkdir()
    checkpoint("score:planned")
    return ScoringPlan(
        workspace_root,
        registered_name,
        version,
        model_run,
        model_name,
        items_path,
        config,
        run_id,
        run_date,
        str(out),
        shards.paths,
        shards.newest,
        str(popularity_path),
        None if similarity_path is None else str(similarity_path),
        str(items_vocab_path),
        positive,
        round(time.perf_counter() - start, 2),
        cached,
    )


class SimilarityCache:
    """The item-item similarity of one validated table, kept by content: a re-run of a
    night (or another night) on byte-identical validated data and the same champion items
    reads it instead of summing co-occurrences again. Keyed by the sha256 of the validated
    file, the item vocabulary and the similarity settings; the newest few are kept."""

    KEEP = 3

    def __init__(self, folder: Path, validated_path: str, items: IdVocabulary) -> None:
        self.folder = Path(folder)
        self._data = (validated_path, items)
        self._digest: str | None = None

    def _file(self, config: ScoreConfig) -> Path:
        import hashlib

        from tasks.storage.cache import file_digest

        if self._digest is None:
            validated_path, items = self._data
            digest = hashlib.sha256(file_digest(validated_path).encode())
            digest.update(items.to_json().encode())
            self._digest = digest.hexdigest()
        settings = f"{self._digest}-{config.neighbours}-{config.shrinkage}"
        return self.folder / f"{hashlib.sha256(settings.encode()).hexdigest()[:32]}.npz"

    def get(self, config: ScoreConfig) -> sp.csr_matrix | None:
        path = self._file(config)
        try:
            similarity = sp.load_npz(path).tocsr()
        except (OSError, ValueError, KeyError):  # absent, or damaged: computed again
            return None
        path.touch()  # the newest used are the ones kept
        return similarity

    def put(self, config: ScoreConfig, similarity: sp.csr_matrix) -> sp.csr_matrix:
        from tasks.storage.shared_files import replace_atomically

        self.folder.mkdir(parents=True, exist_ok=True)
        replace_atomically(self._file(config), lambda tmp: _save_npz(tmp, similarity))
        cached = sorted(self.folder.glob("*.npz"), key=lambda f: f.stat().st_mtime_ns)
        for old in cached[: -self.KEEP]:
            old.unlink(missing_ok=True)
        return similarity


def _save_npz(path: Path, matrix: sp.csr_matrix) -> None:
    with open(path, "wb") as handle:  # a file object: save_npz would add ".npz" to a name
        sp.save_npz(handle, matrix, compressed=False)


def shard_totals(
    paths: list[str],
    items: IdVocabulary,
    newest: pd.Timestamp | None,
    config: ScoreConfig,
    similarity: bool = True,
) -> tuple[np.ndarray, sp.csr_matrix | None]:
    """What every shard shares, summed over the shards of disjoint users: recent
    popularity, and with ``config.explain`` (and ``similarity``) the item-item similarity.
    Memory is bounded by the catalogue (``tasks.data.explain.similarity_in_passes``), not
    by the number of users."""
    from tasks.data.explain import similarity_in_passes
    from tasks.data.shards import read_shard

    popularity = np.zeros(len(items), dtype=np.float32)
    passes = 0

    def matrices() -> Iterator[sp.csr_matrix]:
        nonlocal passes, popularity
        passes += 1
        for path in paths:
            frame = read_shard(path)
            if passes == 1:  # popularity on the first pass over the shards
                popularity += recent_popularity(frame, items, newest, config.popular_days)
            yield user_item_matrix(frame, items)

    if not (config.explain and similarity):
        for _ in matrices():
            pass
        return popularity, None
    similarity = similarity_in_passes(matrices, len(items), config.neighbours, config.shrinkage)
    return popularity, similarity


def score_shard(plan: ScoringPlan, shard: int) -> dict:
    """Score the users of one shard; write ``recommendations/part-NNNNN.parquet``."""
    from tasks import tracking
    from tasks.data.shards import read_shard

    champion = tracking.load_model_version(
        plan.workspace_root, plan.registered_name, plan.version, plan.model_run
    )
    out = write_scores(
        champion.model,
        champion.users,
        champion.items,
        _catalog(champion.items, plan.items_path, plan.config),
        read_shard(plan.shards[shard]),
        plan.config,
        Path(plan.out_dir) / "recommendations" / f"part-{shard:05d}.parquet",
        {"run_id": plan.run_id, "run_date": plan.run_date, "model_version": plan.version},
        newest=None if plan.newest is None else pd.Timestamp(plan.newest),
        popularity=np.load(plan.popularity_path),
        similarity=None if plan.similarity_path is None else sp.load_npz(plan.similarity_path),
        positive=plan.positive,
    )
    checkpoint("score:shard-written")
    return {"shard": shard, "worker": f"{socket.gethostname()}:{os.getpid()}", **out}


def write_scores(
    model: BaseRecommender,
    users: IdVocabulary,
    items: IdVocabulary,
    catalog: Catalog,
    interactions: pd.DataFrame,
    config: ScoreConfig,
    path: Path,
    run: dict,
    newest: pd.Timestamp | None = None,
    popularity: np.ndarray | None = None,
    similarity: sp.csr_matrix | None = None,
    positive: tuple[str, float] | None = None,
) -> dict:
    """Score the users of ``interactions`` block by block, streaming the published table's
    rows to the Parquet file ``path``. ``run``: run_id, run_date, model_version.
    ``positive``: as for :func:`prepare_inputs` (reasons name positive events only)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    inputs = prepare_inputs(
        interactions,
        users,
        items,
        config.active_days,
        config.popular_days,
        with_sequences="sequences" in getattr(model, "fit_inputs", ()),
        newest=newest,
        popularity=popularity,
        positive=positive,
    )
    rows, strategies, writer = 0, {}, None
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
            scoring_threads(config),
        ):
            frame = recommendations_table(
                block, run["run_id"], run["run_date"], model.name, run["model_version"]
            )
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
            pd.DataFrame(columns=SCORED_COLUMNS),
            run["run_id"],
            run["run_date"],
            model.name,
            run["model_version"],
        ).to_parquet(path, index=False)
    return {"rows": rows, "users_by_strategy": strategies}


def _catalog(items: IdVocabulary, items_path: str | None, config: ScoreConfig) -> Catalog:
    from tasks.data.catalog import read_deny_list

    return build_catalog(
        items,
        pd.read_parquet(items_path) if items_path else None,
        read_deny_list(config.deny_list_path, config.deny_items),
        config.respect_available,
    )


def finish_scoring(plan: ScoringPlan, parts: list[dict], seconds: float) -> dict:
    """The stage's summary from the shards' counts."""
    strategies: dict[str, int] = {}
    for part in parts:
        for strategy, n in part["users_by_strategy"].items():
            strategies[strategy] = strategies.get(strategy, 0) + n
    if sorted(p["shard"] for p in parts) != list(range(len(plan.shards))):
        raise RuntimeError(
            f"scoring: {len(plan.shards)} shards planned, results for "
            f"{sorted(p['shard'] for p in parts)}; run the stage again"
        )
    out = Path(plan.out_dir)
    similar = out / "similar_items.parquet"
    n_users = sum(strategies.values())
    return {
        "path": str(out / "recommendations"),
        "items_vocab_path": plan.items_vocab_path,
        "similar_path": str(similar) if similar.exists() else None,
        "rows": sum(p["rows"] for p in parts),
        "users": n_users,
        "shards": len(plan.shards),
        "shard_paths": plan.shards,
        "workers": sorted({p["worker"] for p in parts if "worker" in p}),
        "model": plan.model_name,
        "version": plan.version,
        "users_by_strategy": dict(sorted(strategies.items())),
        "seconds": round(seconds, 2),
        "plan_seconds": plan.plan_seconds,
        "similarity_cached": plan.similarity_cached,
        "users_per_second": round(n_users / seconds, 1) if seconds > 0 else None,
    }


class ScoreResult(StageResult):
    """The scored parts (``path``: ``part-NNNNN.parquet``, one per user shard of
    ``shard_paths``), the similar-items table and the stage's counts
    (:func:`finish_scoring`)."""

    path: str
    items_vocab_path: str
    similar_path: str | None
    rows: int
    users: int
    shards: int
    shard_paths: list[str]
    workers: list[str]
    model: str
    version: str
    users_by_strategy: dict[str, int]
    seconds: float
    plan_seconds: float
    similarity_cached: bool
    users_per_second: float | None


@task(name="plan-scoring", cache_policy=NO_CACHE)
def plan_scoring_task(**kwargs: Any) -> ScoringPlan:
    return plan_scoring(**kwargs)


@task(name="score-shard", task_run_name="score-shard-{shard}", cache_policy=NO_CACHE)
def score_shard_task(plan: ScoringPlan, shard: int) -> dict:
    return score_shard(plan, shard)


@task(name="finish-scoring", cache_policy=NO_CACHE)
def finish_scoring_task(plan: ScoringPlan, parts: list[dict], seconds: float) -> dict:
    return finish_scoring(plan, parts, seconds)
