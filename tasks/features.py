"""Build features: id vocabularies, a global temporal train/validation split, Parquet.

Layout of a feature snapshot folder:

    users.parquet        user_id, user_idx       (vocabulary of every validated user)
    items.parquet        item_id, item_idx       (vocabulary of every validated item)
    train.parquet        user_idx, item_idx, timestamp, value   (events <= cutoff)
    valid.parquet        same columns                            (events  > cutoff)
    meta.json            cutoff, counts, date range
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from prefect import task
from prefect.cache_policies import NO_CACHE

from models.vocab import IdVocabulary
from tasks.config import FeatureConfig
from tasks.errors import DataError


@dataclass(frozen=True)
class FeatureSet:
    users: IdVocabulary
    items: IdVocabulary
    train: pd.DataFrame
    valid: pd.DataFrame
    cutoff: pd.Timestamp

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


def build_features(interactions: pd.DataFrame, config: FeatureConfig) -> FeatureSet:
    """Vocabularies over all validated events, then a split at ``max(ts) - validation_days``."""
    if interactions.empty:
        raise DataError(
            "build features: no validated interactions; expected at least one row; "
            "check the validation report and the source"
        )
    users = IdVocabulary(interactions["user_id"])
    items = IdVocabulary(interactions["item_id"])
    frame = pd.DataFrame(
        {
            "user_idx": users.index(interactions["user_id"]).astype(np.int64),
            "item_idx": items.index(interactions["item_id"]).astype(np.int64),
            "timestamp": interactions["timestamp"].to_numpy(),
            "value": (
                interactions["value"].to_numpy(dtype=np.float64)
                if "value" in interactions
                else np.ones(len(interactions))
            ),
        }
    ).sort_values(["timestamp", "user_idx", "item_idx"], kind="stable", ignore_index=True)
    cutoff = frame["timestamp"].max() - pd.Timedelta(days=config.validation_days)
    is_train = frame["timestamp"] <= cutoff
    train, valid = frame[is_train].reset_index(drop=True), frame[~is_train].reset_index(drop=True)
    if len(train) < config.min_train_interactions:
        span = (frame["timestamp"].min(), frame["timestamp"].max())
        raise DataError(
            f"build features: {len(train)} interactions before the cutoff {cutoff}, expected at "
            f"least {config.min_train_interactions}; the data spans {span[0]} .. {span[1]}; "
            "lower features.validation_days or provide more history"
        )
    return FeatureSet(users=users, items=items, train=train, valid=valid, cutoff=cutoff)


def save_features(features: FeatureSet, directory: Path) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {"user_id": features.users.ids.astype(str), "user_idx": np.arange(len(features.users))}
    ).to_parquet(directory / "users.parquet", index=False)
    pd.DataFrame(
        {"item_id": features.items.ids.astype(str), "item_idx": np.arange(len(features.items))}
    ).to_parquet(directory / "items.parquet", index=False)
    features.train.to_parquet(directory / "train.parquet", index=False)
    features.valid.to_parquet(directory / "valid.parquet", index=False)
    all_ts = pd.concat([features.train["timestamp"], features.valid["timestamp"]])
    meta = {
        "cutoff": features.cutoff.isoformat(),
        "n_users": len(features.users),
        "n_items": len(features.items),
        "n_train": len(features.train),
        "n_valid": len(features.valid),
        "first_event": all_ts.min().isoformat(),
        "last_event": all_ts.max().isoformat(),
    }
    (directory / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


def load_features(directory: Path | str) -> FeatureSet:
    directory = Path(directory)
    meta = json.loads((directory / "meta.json").read_text())
    users = IdVocabulary(pd.read_parquet(directory / "users.parquet")["user_id"])
    items = IdVocabulary(pd.read_parquet(directory / "items.parquet")["item_id"])
    return FeatureSet(
        users=users,
        items=items,
        train=pd.read_parquet(directory / "train.parquet"),
        valid=pd.read_parquet(directory / "valid.parquet"),
        cutoff=pd.Timestamp(meta["cutoff"]),
    )


@task(name="build-features", cache_policy=NO_CACHE)
def build_features_task(validated_path: str, out_dir: str, config: FeatureConfig) -> dict:
    interactions = pd.read_parquet(validated_path)
    features = build_features(interactions, config)
    meta = save_features(features, Path(out_dir))
    return {"features_dir": out_dir, **meta}
