"""What models get besides the interaction matrix, built from a feature snapshot.

* an early-stopping split carved from the END of the training period (the last
  ``early_stopping_days``), so the hold-out that decides promotion is never
  seen during training or tuning; only a model that reads it (``validation`` in its
  ``fit_inputs``) is fitted without those days, every other model on the whole
  training period;
* read part by part from a nightly snapshot (``fit_inputs_from_snapshot``): the
  matrices are built from each part's pairs, never from the whole event table;
* each user's items in time order (sequence models);
* item content features (content / hybrid models): genres one-hot, release year
  scaled to [0, 1], and hashed title tokens, from the items table when there is one;
* the relations between users (social models, ``social``): a users x users CSR matrix
  in the interaction matrix's user index space (tasks/data/social.py), for a model
  whose ``fit_inputs`` list it and a snapshot with a graph;
* each training interaction's age (time-aware models, ``ages``): a CSR matrix over the
  fitted matrix's pairs, the age in days of the user's newest event on the item,
  measured from the newest event fitted on (models/ages.py); all 0 for data without
  time, whose events carry their ingest date.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from models.ages import ages_matrix, event_seconds, newest_by_pair
from models.content import ItemContent
from models.inputs import sequences_from_events
from models.vocab import IdVocabulary
from tasks.data.snapshot import FeatureSet, read_vocabularies, table_parts
from tasks.data.social import read_graph, social_matrix

TITLE_BUCKETS = 64
_TOKEN = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class FitInputs:
    train: sp.csr_matrix  # what the model is fitted on
    sequences: list[np.ndarray] | None  # per user, training items in time order
    item_features: np.ndarray | None  # items x d
    validation: tuple[np.ndarray, sp.csr_matrix] | None  # early stopping target
    social: sp.csr_matrix | None = None  # users x users relations, for models that ask
    ages: sp.csr_matrix | None = None  # each training pair's age in days, for models that ask
    content: ItemContent | None = None  # typed item content, vocabulary rows first

    def kwargs(self) -> dict:
        """Keyword arguments of ``fit``: ``social``, ``ages`` and ``content`` only when built
        (a model that lists them in ``fit_inputs``), so models without them are called as
        before."""
        out: dict[str, Any] = {
            "sequences": self.sequences,
            "item_features": self.item_features,
            "validation": self.validation,
        }
        if self.social is not None:
            out["social"] = self.social
        if self.ages is not None:
            out["ages"] = self.ages
        if self.content is not None:
            out["content"] = self.content
        return out


EVENT_COLUMNS = ["user_idx", "item_idx", "timestamp"]
ReadParts = Callable[[list[str]], Iterable[pd.DataFrame]]


def build_fit_inputs(
    features: FeatureSet,
    items_frame: pd.DataFrame | None,
    early_stopping_days: int,
    needs: Collection[str] = ("sequences", "item_features", "validation"),
    graph: pd.DataFrame | None = None,
) -> FitInputs:
    """The inputs of a model whose ``fit_inputs`` are ``needs``; the others are left empty
    (sequences cost a list entry per user, which a matrix model never reads). ``graph``:
    the relations between users (tasks/data/social.py), for ``social``.

    The early-stopping target is carved from the END of the training period (the last
    ``early_stopping_days``): the users with earlier history and new items there, and
    those items; the model is fitted on the events before it. Without such a user the
    model is fitted on every training event and gets no target.
    """
    inputs = _fit_inputs(
        lambda columns: [features.train[columns]],
        features.users,
        features.items,
        items_frame,
        early_stopping_days,
        needs,
    )
    return _with_social(inputs, graph, len(features.users), needs)


def fit_inputs_from_snapshot(
    directory: Path | str,
    items_frame: pd.DataFrame | None,
    early_stopping_days: int,
    needs: Collection[str] = ("sequences", "item_features", "validation"),
) -> FitInputs:
    """:func:`build_fit_inputs` of the snapshot in ``directory``, reading its training
    events one part file at a time (the nightly snapshot has one per user partition):
    memory holds the matrices and one part, not the event table."""
    directory = Path(directory)
    users, items = read_vocabularies(directory)
    parts = table_parts(directory, "train")
    inputs = _fit_inputs(
        lambda columns: (pd.read_parquet(p, columns=columns) for p in parts),
        users,
        items,
        items_frame,
        early_stopping_days,
        needs,
    )
    graph = read_graph(directory) if "social" in needs else None
    if "content" in needs:
        from tasks.data.content_features import item_content

        inputs = replace(inputs, content=item_content(directory))
    return _with_social(inputs, graph, len(users), needs)


def _with_social(
    inputs: FitInputs, graph: pd.DataFrame | None, n_users: int, needs: Collection[str]
) -> FitInputs:
    if "social" not in needs or graph is None:
        return inputs
    return replace(inputs, social=social_matrix(graph, n_users))


def _fit_inputs(
    read_parts: ReadParts,
    users: IdVocabulary,
    items: IdVocabulary,
    items_frame: pd.DataFrame | None,
    days: int,
    needs: Collection[str],
) -> FitInputs:
    shape = (len(users), len(items))
    stamps = [part["timestamp"].max() for part in read_parts(["timestamp"]) if len(part)]
    cutoff = max(stamps) - pd.Timedelta(days=days) if stamps else None
    pairs: dict[str, list[np.ndarray]] = {"all": [], "inner": [], "later": []}
    newest: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"all": [], "inner": []}
    events: list[pd.DataFrame] = []  # kept only for sequences
    for part in read_parts(EVENT_COLUMNS):
        keys = part["user_idx"].to_numpy(np.int64) * shape[1] + part["item_idx"].to_numpy()
        is_inner = (part["timestamp"] <= cutoff).to_numpy() if len(part) else np.ones(0, bool)
        pairs["all"].append(np.unique(keys))
        pairs["inner"].append(np.unique(keys[is_inner]))
        pairs["later"].append(np.unique(keys[~is_inner]))
        if "sequences" in needs:
            events.append(part)
        if "ages" in needs:
            seconds = event_seconds(part["timestamp"].to_numpy(dtype="datetime64[ns]"))
            newest["all"].append(newest_by_pair(keys, seconds))
            newest["inner"].append(newest_by_pair(keys[is_inner], seconds[is_inner]))
    matrix = {name: _keys_matrix(keys, shape) for name, keys in pairs.items()}
    # only a model that reads the early-stopping target is fitted without its days; every
    # other model learns from the whole training period, up to the hold-out
    validation = _new_items_target(matrix["inner"], matrix["later"])
    fitted = "inner" if validation is not None and "validation" in needs else "all"
    ages = _ages(newest[fitted], shape) if "ages" in needs else None
    sequences = None
    if "sequences" in needs:
        if fitted == "inner":
            events = [part[part["timestamp"] <= cutoff] for part in events]
        inner = (
            pd.concat(events, ignore_index=True) if events else pd.DataFrame(columns=EVENT_COLUMNS)
        )
        sequences = sequences_from_events(
            inner["user_idx"].to_numpy(),
            inner["item_idx"].to_numpy(),
            inner["timestamp"].to_numpy(),
            shape[0],
        )
    item_features = None
    if "item_features" in needs:
        item_features = item_content_features(items, items_frame)
    return FitInputs(
        train=matrix[fitted],
        sequences=sequences,
        item_features=item_features,
        validation=validation if "validation" in needs else None,
        ages=ages,
    )


def _ages(parts: list[tuple[np.ndarray, np.ndarray]], shape: tuple[int, int]) -> sp.csr_matrix:
    """The ``ages`` input from each part's pairs and their newest times (a pair in several
    parts keeps its newest), measured from the newest of them all."""
    if not parts:
        return ages_matrix(np.zeros(0, np.int64), np.zeros(0), shape)
    codes, newest = newest_by_pair(
        np.concatenate([keys for keys, _ in parts]),
        np.concatenate([seconds for _, seconds in parts]),
    )
    return ages_matrix(codes, newest, shape)


def _keys_matrix(keys: list[np.ndarray], shape: tuple[int, int]) -> sp.csr_matrix:
    """Binary CSR matrix of the (user, item) pairs coded as ``user * n_items + item``."""
    codes = np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)
    data = np.ones(len(codes), dtype=np.float32)
    matrix = sp.csr_matrix((data, (codes // shape[1], codes % shape[1])), shape=shape)
    matrix.data[:] = 1.0
    return matrix


def _new_items_target(
    inner: sp.csr_matrix, later: sp.csr_matrix
) -> tuple[np.ndarray, sp.csr_matrix] | None:
    """Users with earlier history and new later items, and those items; None without any."""
    if inner.nnz == 0 or later.nnz == 0:
        return None
    new = (later - later.multiply(inner > 0)).tocsr()
    new.eliminate_zeros()
    users = np.flatnonzero((np.diff(inner.indptr) > 0) & (np.diff(new.indptr) > 0))
    if users.size == 0:
        return None
    return users, new[users]


def item_content_features(items: IdVocabulary, frame: pd.DataFrame | None) -> np.ndarray | None:
    """Genres one-hot, year in [0, 1], title tokens hashed into ``TITLE_BUCKETS``; None without a
    table."""
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
