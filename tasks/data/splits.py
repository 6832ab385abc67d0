"""Evaluation protocols: how interactions are split into train / validation / test.

* ``temporal``: one global cut in time: the oldest 80% of events train, the next
  10% validate, the newest 10% test (the nightly setting);
* ``leave-last-out``: per user by time: the last event tests, the one before
  validates, the rest trains (sequence models' usual protocol; users with fewer
  than 3 events only train);
* ``random``: per user, events shuffled with a seed and split 80/10/10, every
  rating taken as implicit feedback (RecBole's protocol, to compare with
  published numbers).

Every split returns dense-index frames (user_idx, item_idx, timestamp) over one
vocabulary built from all events, so models and metrics share index spaces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from models.vocab import IdVocabulary
from tasks.data.snapshot import interactions_matrix

Protocol = Literal["temporal", "leave-last-out", "random"]
PROTOCOLS: tuple[str, ...] = ("temporal", "leave-last-out", "random")


@dataclass(frozen=True)
class Split:
    protocol: str
    users: IdVocabulary
    items: IdVocabulary
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.users), len(self.items)

    def matrix(self, *parts: str) -> sp.csr_matrix:
        frame = pd.concat([getattr(self, p) for p in parts], ignore_index=True)
        return interactions_matrix(frame, self.shape)

    def target(self, part: str, history_parts: tuple[str, ...]) -> tuple[np.ndarray, sp.csr_matrix]:
        """Users with history in ``history_parts`` and new items in ``part``; their items."""
        history = self.matrix(*history_parts)
        target = self.matrix(part)
        new = (target - target.multiply(history > 0)).tocsr()
        new.eliminate_zeros()
        users = np.flatnonzero((np.diff(history.indptr) > 0) & (np.diff(new.indptr) > 0))
        return users, new[users]


def indexed_events(
    interactions: pd.DataFrame,
) -> tuple[IdVocabulary, IdVocabulary, pd.DataFrame]:
    """Users' and items' vocabularies and the events as dense indices, one per (user,
    item) pair (the last kept), in time order."""
    user_ids = interactions["user_id"].astype(str)
    item_ids = interactions["item_id"].astype(str)
    users, items = IdVocabulary(user_ids), IdVocabulary(item_ids)
    frame = pd.DataFrame(
        {
            "user_idx": users.index(user_ids).astype(np.int64),
            "item_idx": items.index(item_ids).astype(np.int64),
            "timestamp": interactions["timestamp"].to_numpy(),
        }
    ).drop_duplicates(["user_idx", "item_idx"], keep="last")
    frame = frame.sort_values(["timestamp", "user_idx", "item_idx"], kind="stable")
    return users, items, frame.reset_index(drop=True)


def split(
    interactions: pd.DataFrame,
    protocol: str,
    seed: int = 42,
    ratios: tuple[float, float] = (0.8, 0.9),
) -> Split:
    """Split raw interactions (user_id, item_id, timestamp) by ``protocol``."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {list(PROTOCOLS)}")
    users, items, frame = indexed_events(interactions)
    if protocol == "temporal":
        n = len(frame)
        a, b = int(n * ratios[0]), int(n * ratios[1])
        parts = frame.iloc[:a], frame.iloc[a:b], frame.iloc[b:]
    elif protocol == "leave-last-out":
        pos_from_end = frame.groupby("user_idx").cumcount(ascending=False)
        size = frame.groupby("user_idx")["item_idx"].transform("size")
        eligible = size >= 3
        parts = (
            frame[~eligible | (pos_from_end >= 2)],
            frame[eligible & (pos_from_end == 1)],
            frame[eligible & (pos_from_end == 0)],
        )
    else:
        rng = np.random.default_rng(seed)
        shuffled = frame.assign(_key=rng.random(len(frame))).sort_values(["user_idx", "_key"])
        rank = shuffled.groupby("user_idx").cumcount()
        size = shuffled.groupby("user_idx")["item_idx"].transform("size")
        share = rank / size
        parts = (
            shuffled[share < ratios[0]],
            shuffled[(share >= ratios[0]) & (share < ratios[1])],
            shuffled[share >= ratios[1]],
        )
        parts = tuple(p.drop(columns="_key").sort_values("timestamp", kind="stable") for p in parts)
    train, valid, test = (p.reset_index(drop=True) for p in parts)
    return Split(protocol, users, items, train, valid, test)
