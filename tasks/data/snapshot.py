"""The feature snapshot on disk, and what it holds in memory (``FeatureSet``).

Layout of a feature snapshot folder:

    users.parquet        user_id, user_idx       (vocabulary of every validated user)
    items.parquet        item_id, item_idx       (vocabulary of every validated item)
    train.parquet        user_idx, item_idx, timestamp, value   (events <= cutoff)
    valid.parquet        same columns                            (events  > cutoff)
    seen.parquet         same columns  (events before the hold-out that are not positives)
    meta.json            cutoff, counts, date range

``train.parquet`` and ``valid.parquet`` are files when written by ``save_features`` and
folders of one file per user partition when the nightly flow builds them (tasks/features.py);
readers (``load_features``, ``table_parts``, pandas, pyarrow) take either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from models.vocab import IdVocabulary
from tasks.data.encode import ID_TYPE


@dataclass(frozen=True)
class FeatureSet:
    """A feature snapshot in memory: the vocabularies and the encoded events of each part."""

    users: IdVocabulary
    items: IdVocabulary
    train: pd.DataFrame
    valid: pd.DataFrame
    cutoff: pd.Timestamp  # NaT when each active user's latest events are held out
    holdout: dict | None = None  # what was held out and why (tasks/data/holdout.py)
    seen: pd.DataFrame | None = None  # events before the hold-out that are not positives

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.users), len(self.items)

    def matrix(self, part: str) -> sp.csr_matrix:
        """Binary users x items CSR matrix of ``part`` ("train", "valid" or "all")."""
        frames = {"train": [self.train], "valid": [self.valid], "all": [self.train, self.valid]}
        frame = pd.concat(frames[part], ignore_index=True)
        return interactions_matrix(frame, self.shape)


def interactions_matrix(frame: pd.DataFrame, shape: tuple[int, int]) -> sp.csr_matrix:
    """Binary CSR matrix from (user_idx, item_idx) rows; repeated pairs count once."""
    data = np.ones(len(frame), dtype=np.float32)
    matrix = sp.csr_matrix(
        (data, (frame["user_idx"].to_numpy(), frame["item_idx"].to_numpy())), shape=shape
    )
    matrix.data[:] = 1.0
    return matrix


def read_vocabularies(directory: Path) -> tuple[IdVocabulary, IdVocabulary]:
    """The snapshot's user and item vocabularies (written sorted: not sorted again)."""
    return _read_vocabulary(directory, "user"), _read_vocabulary(directory, "item")


def _read_vocabulary(directory: Path, name: str) -> IdVocabulary:
    table = pq.read_table(directory / f"{name}s.parquet", columns=[f"{name}_id", f"{name}_idx"])
    order = np.argsort(table.column(f"{name}_idx").to_numpy(), kind="stable")
    ids = table.column(f"{name}_id").to_numpy()[order]
    if len(ids) > 1 and not (ids[1:] > ids[:-1]).all():  # not as written: sort them
        return IdVocabulary(ids)
    return IdVocabulary.from_sorted(ids)


def write_vocabulary_files(directory: Path, users: pa.Array, items: pa.Array) -> None:
    """users.parquet (user_id, user_idx) and items.parquet (item_id, item_idx)."""
    for name, ids in (("user", users), ("item", items)):
        table = pa.table(
            {f"{name}_id": ids.cast(ID_TYPE), f"{name}_idx": np.arange(len(ids), dtype=np.int64)}
        )
        pq.write_table(table, directory / f"{name}s.parquet")


def save_features(features: FeatureSet, directory: Path) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    write_vocabulary_files(
        directory,
        pa.array(features.users.ids.astype(str), ID_TYPE),
        pa.array(features.items.ids.astype(str), ID_TYPE),
    )
    features.train.to_parquet(directory / "train.parquet", index=False)
    features.valid.to_parquet(directory / "valid.parquet", index=False)
    if features.seen is not None:
        features.seen.to_parquet(directory / "seen.parquet", index=False)
    all_ts = pd.concat([features.train["timestamp"], features.valid["timestamp"]])
    meta = {
        "cutoff": None if pd.isna(features.cutoff) else features.cutoff.isoformat(),
        "holdout": features.holdout,
        "n_users": len(features.users),
        "n_items": len(features.items),
        "n_train": len(features.train),
        "n_valid": len(features.valid),
        "first_event": all_ts.min().isoformat(),
        "last_event": all_ts.max().isoformat(),
    }
    (directory / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


def table_parts(directory: Path | str, table: str) -> list[Path]:
    """The files of a snapshot's ``table`` ("train" or "valid"): the file itself, or its
    folder's part files in order (part i of train and of valid hold the same users)."""
    path = Path(directory) / f"{table}.parquet"
    return sorted(path.glob("*.parquet")) if path.is_dir() else [path]


def load_features(directory: Path | str) -> FeatureSet:
    directory = Path(directory)
    meta = json.loads((directory / "meta.json").read_text())
    users, items = read_vocabularies(directory)
    return FeatureSet(
        users=users,
        items=items,
        train=pd.read_parquet(directory / "train.parquet"),
        valid=pd.read_parquet(directory / "valid.parquet"),
        seen=pd.read_parquet(directory / "seen.parquet")
        if (directory / "seen.parquet").exists()
        else None,
        cutoff=pd.Timestamp(meta["cutoff"]) if meta.get("cutoff") else pd.NaT,
        holdout=meta.get("holdout"),
    )
