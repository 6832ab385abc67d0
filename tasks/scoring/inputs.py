"""Today's interactions mapped into a model's spaces, and the item-side statistics every
user shard shares.

Scoring works on integer codes: the users' histories as binary sparse rows over the
champion's items, the rows the champion knows moved to its own user rows, per-user
sequences for sequence models, and the recent popularity of every item. Raw ids are
looked up once per block, when the table's rows are written (:mod:`tasks.scoring.table`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from models.vocab import IdVocabulary
from tasks.config import ScoreConfig


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
    # the friends' items of the graph's users without usable history
    # (tasks/scoring/social.py: SocialScores); None without a graph
    social: Any = None


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
