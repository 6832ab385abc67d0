"""Ranking: top-K items for each user, in blocks of bounded size, by one strategy per user.

Each user gets one strategy:

* ``personal``: the model knows the user and they have at least ``min_history``
  interactions it can read; it ranks every item;
* ``cold_start``: the model does not know the user (new since it was trained) or their
  history is too short, but they touched some known items: items are ranked by content
  (genre profile of what they did) when the catalog has genres, else by co-occurrence
  with what they did;
* ``social``: no usable history (none of the model's items), but friends in the graph
  who have some: what the friends interacted with, weighted by the relation
  (:mod:`tasks.scoring.social`), "liked by N of your friends";
* ``fallback``: nothing usable: the most popular items of the last ``popular_days``
  days; or the model is not personalised (popularity, recent popularity): its own
  ranking, the same for every user (:meth:`models.BaseRecommender.shared_scores`).

Seen items, denied items and unavailable items are never recommended; an optional cap
limits items per primary genre. A model with an item index (a factor model over a catalog
of at least its ``ann_min_items``, :mod:`models.ann`) ranks its personal users' retrieved
candidates the same way: for each user k (4 x k with the cap) plus their history plus
the blocked items plus a margin, so exclusions never leave fewer than k. Each row gets a
short ``reason``. Blocks are yielded one at a time so the caller can stream them to disk:
memory holds one block of scores, not one per user.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from models import BaseRecommender
from models.ann import CANDIDATE_MARGIN
from models.memory import block_rows
from models.ranking import columns_top_k, sparse_top_k, top_k, top_k_candidates
from models.vocab import IdVocabulary
from tasks.config import ScoreConfig
from tasks.data.catalog import Catalog, build_catalog, cap_per_genre
from tasks.data.explain import reasons, supporting_items
from tasks.data.parallel import available_cpus, in_order
from tasks.scoring.inputs import ScoringInputs, prepare_inputs
from tasks.scoring.social import social_block_scores, social_reasons

SCORED_COLUMNS = ["user_id", "rank", "item_id", "score", "strategy", "reason"]


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
    social_rows = _social_rows(inputs)
    social = ~personal & ~cold & (n_hist == 0) & (social_rows >= 0)
    # a block of dense scores stays within 256 MiB; a model ranked without one (sparse
    # scores, a subset of items, retrieved candidates) takes whole blocks of users, its
    # few cold-start users scored dense in slices of that size
    dense_rows = block_rows(batch_users, inputs.history.shape[1])
    batch_users = dense_rows if model.dense_scores else batch_users
    guard = threading.Lock() if threads > 1 and not model.concurrent_scoring else nullcontext()

    def ranked(start: int) -> list[tuple]:
        block = np.arange(start, min(start + batch_users, n_users))
        out = []
        for mask, strategy in (
            (personal, "personal"),
            (cold, "cold_start"),
            (social, "social"),
            (~personal & ~cold & ~social, "fallback"),
        ):
            rows = block[mask[block]]
            if rows.size == 0:
                continue
            history = inputs.history[rows]
            if strategy == "personal" and model.retrieves:
                items, top = _rank_retrieved(
                    model, inputs.in_model[rows], inputs, history, catalog, k, max_per_genre, guard
                )
                out.append((rows, strategy, items, top, history))
                continue
            if strategy == "personal":
                users = inputs.in_model[rows]
                with guard:
                    sparse = model.score_sparse(users, history=inputs.model_history)
                if sparse is not None:  # a sparse product: ranked over its entries
                    items, top = _rank_sparse(sparse, history, catalog, k, max_per_genre)
                    out.append((rows, strategy, items, top, history))
                    continue
                extra = {} if inputs.sequences is None else {"sequences": inputs.sequences}
                with guard:
                    columns = model.score_columns(users, inputs.model_history, **extra)
                if columns is not None:  # a model that ranks only some items
                    items, top = _rank_columns(*columns, history, catalog, k, max_per_genre)
                    out.append((rows, strategy, items, top, history))
                    continue
                with guard:
                    scores = model.score(users, history=inputs.model_history, **extra)
            elif strategy in ("cold_start", "social"):
                parts = []
                for lo in range(0, rows.size, dense_rows):  # dense scores, in slices
                    some = slice(lo, lo + dense_rows)
                    if strategy == "social":
                        scores = social_block_scores(
                            inputs.social, social_rows[rows[some]], inputs.recent_popularity
                        )
                    else:
                        scores = _content_scores(
                            history[some], catalog, similarity, inputs.recent_popularity
                        )
                    parts.append(_rank(scores, history[some], catalog, k, max_per_genre))
                items = np.concatenate([p[0] for p in parts])
                top = np.concatenate([p[1] for p in parts])
                out.append((rows, strategy, items, top, history))
                continue
            else:  # a non-personal model's own ranking, else recent popularity
                shared = model.shared_scores()
                shared = inputs.recent_popularity if shared is None else shared
                scores = np.broadcast_to(shared, (rows.size, catalog.n_items))
            items, top = _rank(scores, history, catalog, k, max_per_genre)
            out.append((rows, strategy, items, top, history))
        return out

    for block in in_order(ranked, range(0, n_users, batch_users), threads):
        yield from block


def _social_rows(inputs: ScoringInputs) -> np.ndarray:
    """Each user's row of the social scores, -1 without one (or without a graph)."""
    n_users = inputs.history.shape[0]
    if inputs.social is None or inputs.users is None:
        return np.full(n_users, -1, dtype=np.int64)
    return inputs.social.rows(inputs.users.ids)


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
    model_reason = model.shared_reason() or fallback_reason
    # a block of dense scores stays within 256 MiB; a model ranked without one (sparse
    # scores, a subset of items, retrieved candidates) takes whole blocks of users, its
    # few cold-start users scored dense in slices of that size
    dense_rows = block_rows(batch_users, inputs.history.shape[1])
    batch_users = dense_rows if model.dense_scores else batch_users
    parts: list[pd.DataFrame] = []
    current = None
    social_rows = _social_rows(inputs)
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
            # numpy's stubs reject None as a value; at runtime it is an object scalar
            why = np.where(  # type: ignore[call-overload]  # stubs reject None
                items >= 0, model_reason, None
            ).astype(object)
        elif strategy == "social":
            why = social_reasons(inputs.social, social_rows[rows], items, fallback_reason)
        elif similarity is not None:
            liked = None if inputs.positive is None else inputs.positive[rows]
            why = reasons(
                supporting_items(similarity, history, items, positive=liked),
                catalog.item_ids,
                catalog.titles,
            )
        else:
            why = np.full(items.shape, None, dtype=object)
        if strategy == "cold_start":  # an item no liked item supports: what ranked it
            why[(items >= 0) & pd.isna(why)] = _cold_start_reason(
                catalog, similarity, fallback_reason
            )
        if inputs.users is None:
            raise ValueError("score_blocks needs the raw user ids: ScoringInputs.users is None")
        parts.append(_frame(inputs.users.raw(rows), items, top, why, catalog, strategy))
    if parts:
        yield pd.concat(parts, ignore_index=True)


def _rank(
    scores: np.ndarray, history: sp.csr_matrix, catalog: Catalog, k: int, cap: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k after exclusions. A fresh, writeable float32 block is modified in place
    (models return new arrays, or read-only views such as popularity's broadcast)."""
    if scores.ndim == 2 and scores.strides[0] == 0:  # every row the same: kept a broadcast
        shared = np.array(scores[0], dtype=np.float32, copy=True)
        shared[catalog.blocked] = -np.inf
        scores = np.broadcast_to(shared, scores.shape)
    elif not (scores.dtype == np.float32 and scores.flags.writeable):
        scores = np.array(scores, dtype=np.float32, copy=True)
        scores[:, catalog.blocked] = -np.inf
    elif catalog.blocked.any():
        scores[:, catalog.blocked] = -np.inf
    return _capped(lambda n: top_k(scores, n, exclude=history, overwrite=True), catalog, k, cap)


def _capped(
    select: Callable[[int], tuple[np.ndarray, np.ndarray]],
    catalog: Catalog,
    k: int,
    cap: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """``select(k)``, or with a cap per genre, the cap applied to ``select(4 x k)``: the
    step every ranking below ends with."""
    if cap is None:
        return select(k)
    items, scores = select(min(catalog.n_items, k * 4))
    return cap_per_genre(items, scores, catalog.genre, k, cap)


def _rank_sparse(
    scores: sp.csr_matrix, history: sp.csr_matrix, catalog: Catalog, k: int, cap: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_rank` of sparse scores (absent cells 0): the same lists."""
    return _capped(
        lambda n: sparse_top_k(scores, n, exclude=history, blocked=catalog.blocked),
        catalog,
        k,
        cap,
    )


def _rank_columns(
    scores: np.ndarray,
    columns: np.ndarray,
    history: sp.csr_matrix,
    catalog: Catalog,
    k: int,
    cap: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_rank` of scores over some items only (every other item -inf)."""
    return _capped(
        lambda n: columns_top_k(scores, columns, n, exclude=history, blocked=catalog.blocked),
        catalog,
        k,
        cap,
    )


def _rank_retrieved(
    model: BaseRecommender,
    users: np.ndarray,
    inputs: ScoringInputs,
    history: sp.csr_matrix,
    catalog: Catalog,
    k: int,
    cap: int | None,
    guard: AbstractContextManager[Any],
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_rank` over the candidates the model retrieves for ``users`` (its rows of
    ``inputs.model_history``; ``guard`` held while it does): enough per user that their
    ``history`` and the blocked items, all excluded, still leave the k (or the cap's
    4 x k) asked for."""
    want = k if cap is None else min(catalog.n_items, k * 4)
    excluded = np.diff(history.indptr) + int(catalog.blocked.sum())
    with guard:
        items, scores = model.candidates(
            users, want + excluded + CANDIDATE_MARGIN, history=inputs.model_history
        )
    blocked = catalog.blocked if catalog.blocked.any() else None
    return _capped(
        lambda n: top_k_candidates(items, scores, n, exclude=history, blocked=blocked),
        catalog,
        k,
        cap,
    )


def _cold_start_reason(catalog: Catalog, similarity: sp.csr_matrix | None, fallback: str) -> str:
    """The reason of a cold-start row that no item of the user's history explains: what
    ranked it (:func:`_content_scores`)."""
    if catalog.genre_vectors is not None:
        return "close to the genres of what you chose"
    if similarity is not None:
        return "often chosen with what you chose"
    return fallback


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
