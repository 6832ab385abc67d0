"""What models get besides the interaction matrix, built from a feature snapshot.

* an early-stopping split carved from the END of the training period (the last
  ``early_stopping_days``), so the hold-out that decides promotion is never
  seen during training or tuning;
* each user's items in time order (sequence models);
* item content features (content / hybrid models): genres one-hot, release year
  scaled to [0, 1], and hashed title tokens, from the items table when there is one.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from models.inputs import sequences_from_events
from models.vocab import IdVocabulary
from tasks.features import FeatureSet, interactions_matrix

TITLE_BUCKETS = 64
_TOKEN = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class FitInputs:
    train: sp.csr_matrix  # what the model is fitted on
    sequences: list[np.ndarray] | None  # per user, training items in time order
    item_features: np.ndarray | None  # items x d
    validation: tuple[np.ndarray, sp.csr_matrix] | None  # early stopping target

    def kwargs(self) -> dict:
        return {
            "sequences": self.sequences,
            "item_features": self.item_features,
            "validation": self.validation,
        }


def early_stopping_split(
    train: pd.DataFrame, shape: tuple[int, int], days: int
) -> tuple[pd.DataFrame, tuple[np.ndarray, sp.csr_matrix] | None]:
    """``(inner training rows, (users, relevant))``: the last ``days`` of training are held out.

    Returns the whole training split and no target when the carve-out would leave
    no user with both earlier history and new later items.
    """
    if train.empty:
        return train, None
    cutoff = train["timestamp"].max() - pd.Timedelta(days=days)
    inner, later = train[train["timestamp"] <= cutoff], train[train["timestamp"] > cutoff]
    if inner.empty or later.empty:
        return train, None
    inner_m = interactions_matrix(inner, shape)
    later_m = interactions_matrix(later, shape)
    new = (later_m - later_m.multiply(inner_m > 0)).tocsr()
    new.eliminate_zeros()
    users = np.flatnonzero((np.diff(inner_m.indptr) > 0) & (np.diff(new.indptr) > 0))
    if users.size == 0:
        return train, None
    return inner.reset_index(drop=True), (users, new[users])


def item_content_features(items: IdVocabulary, frame: pd.DataFrame | None) -> np.ndarray | None:
    """Genres one-hot, year in [0, 1], title tokens hashed into ``TITLE_BUCKETS``; None without a table."""
    if frame is None or frame.empty:
        return None
    table = (
        frame.assign(item_id=frame["item_id"].astype(str))
        .drop_duplicates("item_id")
        .set_index("item_id")
        .reindex(items.ids.astype(str))
    )
    parts = []
    if "genres" in table:
        genres = table["genres"].fillna("").astype(str).str.get_dummies(sep="|")
        genres = genres.drop(columns=[c for c in genres.columns if not c.strip()])
        parts.append(genres.to_numpy(dtype=np.float32))
    if "year" in table:
        year = pd.to_numeric(table["year"], errors="coerce")
        lo, hi = year.min(), year.max()
        scaled = ((year - lo) / (hi - lo)) if hi > lo else year * 0
        parts.append(scaled.fillna(0.5).to_numpy(dtype=np.float32)[:, None])
    if "title" in table:
        hashed = np.zeros((len(table), TITLE_BUCKETS), dtype=np.float32)
        for row, title in enumerate(table["title"].fillna("").astype(str)):
            for token in _TOKEN.findall(re.sub(r"\(\d{4}\)", "", title.lower())):
                hashed[row, zlib.crc32(token.encode()) % TITLE_BUCKETS] = 1.0
        parts.append(hashed)
    return np.hstack(parts) if parts else None


def build_fit_inputs(
    features: FeatureSet,
    items_frame: pd.DataFrame | None,
    early_stopping_days: int,
    needs: Collection[str] = ("sequences", "item_features", "validation"),
) -> FitInputs:
    """The inputs of a model whose ``fit_inputs`` are ``needs``; the others are left empty
    (sequences cost a list entry per user, which a matrix model never reads)."""
    inner, validation = early_stopping_split(features.train, features.shape, early_stopping_days)
    sequences = None
    if "sequences" in needs:
        sequences = sequences_from_events(
            inner["user_idx"].to_numpy(),
            inner["item_idx"].to_numpy(),
            inner["timestamp"].to_numpy(),
            len(features.users),
        )
    item_features = None
    if "item_features" in needs:
        item_features = item_content_features(features.items, items_frame)
    return FitInputs(
        train=interactions_matrix(inner, features.shape),
        sequences=sequences,
        item_features=item_features,
        validation=validation if "validation" in needs else None,
    )
