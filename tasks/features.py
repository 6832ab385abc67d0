"""Build features: id vocabularies, a global temporal train/validation split, Parquet.

Layout of a feature snapshot folder:

    users.parquet        user_id, user_idx       (vocabulary of every validated user)
    items.parquet        item_id, item_idx       (vocabulary of every validated item)
    train.parquet        user_idx, item_idx, timestamp, value   (events <= cutoff)
    valid.parquet        same columns                            (events  > cutoff)
    meta.json            cutoff, counts, date range

``train.parquet`` and ``valid.parquet`` are files when written by ``save_features`` and
folders of one file per user partition when the nightly flow builds them; readers
(``load_features``, pandas, pyarrow) take either.
"""

from __future__ import annotations

import functools
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from prefect import task
from prefect.cache_policies import NO_CACHE

from models.vocab import IdVocabulary
from tasks.config import FeatureConfig
from tasks.data.holdout import (
    evidence_counts,
    holdout_stats,
    size_holdout,
    split_events,
    with_positives,
)
from tasks.errors import DataError


@dataclass(frozen=True)
class FeatureSet:
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


def build_features(interactions: pd.DataFrame, config: FeatureConfig) -> FeatureSet:
    """Vocabularies over all validated events, then a split at ``max(ts) - validation_days``
    (in memory; the nightly flow builds the same snapshot in partitions, see below)."""
    if interactions.empty:
        raise DataError(NO_INTERACTIONS)
    users = IdVocabulary(interactions["user_id"])
    items = IdVocabulary(interactions["item_id"])
    frame = encode(with_positives(interactions, config), users, items)
    choice = size_holdout([holdout_stats(interactions, config)], frame["timestamp"].max(), config)
    parts = split_events(frame, choice)
    train, valid, seen = parts["train"], parts["valid"], parts["seen"]
    cutoff = pd.Timestamp(choice["cutoff"]) if choice["cutoff"] else pd.NaT
    check_train_size(
        len(train), cutoff, (frame["timestamp"].min(), frame["timestamp"].max()), config
    )
    n_users, n_events = evidence_counts(pd.concat([train, seen]), valid)
    holdout = {**choice, "users": n_users, "events": n_events}
    return FeatureSet(
        users=users,
        items=items,
        train=train,
        valid=valid,
        cutoff=cutoff,
        holdout=holdout,
        seen=seen if config.positive != "all" else None,
    )


NO_INTERACTIONS = (
    "build features: no validated interactions; expected at least one row; "
    "check the validation report and the source"
)


def encode(interactions: pd.DataFrame, users: IdVocabulary, items: IdVocabulary) -> pd.DataFrame:
    """user_idx, item_idx, timestamp, value (1 without a value column), in time order."""
    return pd.DataFrame(
        {
            "user_idx": users.index(interactions["user_id"]).astype(np.int64),
            "item_idx": items.index(interactions["item_id"]).astype(np.int64),
            "timestamp": interactions["timestamp"].to_numpy(),
            "value": (
                interactions["value"].to_numpy(dtype=np.float64)
                if "value" in interactions
                else np.ones(len(interactions))
            ),
            **(
                {"positive": interactions["positive"].to_numpy()}
                if "positive" in interactions
                else {}
            ),
        }
    ).sort_values(["timestamp", "user_idx", "item_idx"], kind="stable", ignore_index=True)


def check_train_size(
    n_train: int, cutoff: pd.Timestamp, span: tuple, config: FeatureConfig
) -> None:
    if n_train < config.min_train_interactions:
        raise DataError(
            f"build features: {n_train} interactions before the cutoff {cutoff}, expected at "
            f"least {config.min_train_interactions}; the data spans {span[0]} .. {span[1]}; "
            "lower features.validation_days or provide more history"
        )


# -- the nightly features stage, in user partitions ---------------------------------------
# The validated interactions are split by user (tasks/data/shards.py, one streaming pass); each
# partition's ids are collected, the vocabularies are merged from them, and each partition
# is encoded and split on its own. All of a user's events share one partition, so each
# user's events keep the order ``build_features`` gives them and the snapshot holds the
# same rows; ``train.parquet`` and ``valid.parquet`` are folders with one file per partition.
PARTITION_COLUMNS = ("user_id", "item_id", "timestamp", "value", "event_type")


@dataclass(frozen=True)
class FeaturePlan:
    """What each partition task needs, as paths and plain values (it travels to Dask workers)."""

    out_dir: str
    partitions: list[str]  # Parquet files, each with all events of its users
    config: FeatureConfig


def plan_features(validated_path: str, out_dir: str, config: FeatureConfig) -> FeaturePlan:
    from tasks.data.shards import shard_interactions

    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shards = shard_interactions(
        validated_path, out / "_partitions", config.part_rows, columns=PARTITION_COLUMNS
    )
    if shards.rows == 0:
        raise DataError(NO_INTERACTIONS)
    return FeaturePlan(str(out), shards.paths, config)


def partition_ids(plan: FeaturePlan, part: int) -> dict:
    """The distinct users and items of one partition, and its first and last event."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(plan.partitions[part], columns=["user_id", "item_id", "timestamp"])
    first_last = pc.min_max(table["timestamp"])
    judged = [
        c for c in ("value", "event_type") if c in pq.read_schema(plan.partitions[part]).names
    ]
    frame = pd.read_parquet(plan.partitions[part], columns=["user_id", "timestamp", *judged])
    return {
        "holdout_stats": holdout_stats(frame, plan.config),
        "users": pc.unique(table["user_id"]).to_numpy(zero_copy_only=False),
        "items": pc.unique(table["item_id"]).to_numpy(zero_copy_only=False),
        "rows": table.num_rows,
        "first": first_last["min"].as_py(),
        "last": first_last["max"].as_py(),
    }


def write_vocabularies(plan: FeaturePlan, ids: list[dict]) -> dict:
    """Merge the partitions' ids into the snapshot's vocabularies; fix the cutoff."""
    users = IdVocabulary(np.concatenate([part["users"] for part in ids]))
    items = IdVocabulary(np.concatenate([part["items"] for part in ids]))
    _write_vocabularies(Path(plan.out_dir), users, items)
    first = min(pd.Timestamp(part["first"]) for part in ids if part["rows"])
    last = max(pd.Timestamp(part["last"]) for part in ids if part["rows"])
    stats = [part["holdout_stats"] for part in ids if part["rows"]]
    holdout = size_holdout(stats, last, plan.config)
    return {
        "cutoff": holdout["cutoff"],
        "holdout": holdout,
        "n_users": len(users),
        "n_items": len(items),
        "first_event": first.isoformat(),
        "last_event": last.isoformat(),
    }


def encode_partition(plan: FeaturePlan, part: int, cutoff: str | dict) -> dict:
    """Encode one partition with the snapshot's vocabularies and split it as the hold-out
    choice (or at the timestamp) ``cutoff`` says."""
    out = Path(plan.out_dir)
    users, items = _vocabularies(plan.out_dir)
    raw = with_positives(pd.read_parquet(plan.partitions[part]), plan.config)
    parts = split_events(encode(raw, users, items), cutoff)
    if plan.config.positive == "all":
        del parts["seen"]
    counts = {}
    for name, rows in parts.items():
        folder = out / f"{name}.parquet"
        folder.mkdir(exist_ok=True)
        rows.to_parquet(folder / f"part-{part:05d}.parquet", index=False)
        counts[f"n_{name}"] = len(rows)
    history = pd.concat([parts["train"], parts.get("seen", parts["train"].iloc[:0])])
    n_users, n_events = evidence_counts(history, parts["valid"])
    return {**counts, "holdout_users": n_users, "holdout_events": n_events}


def finish_features(plan: FeaturePlan, vocabularies: dict, counts: list[dict]) -> dict:
    n_train = sum(c["n_train"] for c in counts)
    cutoff = pd.Timestamp(vocabularies["cutoff"]) if vocabularies["cutoff"] else pd.NaT
    span = (vocabularies["first_event"], vocabularies["last_event"])
    check_train_size(n_train, cutoff, span, plan.config)
    meta = {**vocabularies, "n_train": n_train, "n_valid": sum(c["n_valid"] for c in counts)}
    meta["n_seen_not_positive"] = sum(c.get("n_seen", 0) for c in counts)
    if "holdout" in meta:
        meta["holdout"] = {
            **meta["holdout"],
            "users": sum(c.get("holdout_users", 0) for c in counts),
            "events": sum(c.get("holdout_events", 0) for c in counts),
        }
    out = Path(plan.out_dir)
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    shutil.rmtree(out / "_partitions", ignore_errors=True)
    return {"features_dir": plan.out_dir, "partitions": len(plan.partitions), **meta}


def _vocabularies(out_dir: str) -> tuple[IdVocabulary, IdVocabulary]:
    """The snapshot's vocabularies, read once per process and version of the files (a Dask
    worker encodes many partitions; a re-run rewrites them in the same folder)."""
    stamp = tuple(
        (p.stat().st_mtime_ns, p.stat().st_size)
        for p in (Path(out_dir) / "users.parquet", Path(out_dir) / "items.parquet")
    )
    return _read_vocabularies(out_dir, stamp)


@functools.lru_cache(maxsize=2)
def _read_vocabularies(out_dir: str, stamp: tuple) -> tuple[IdVocabulary, IdVocabulary]:
    return read_vocabularies(Path(out_dir))


def read_vocabularies(directory: Path) -> tuple[IdVocabulary, IdVocabulary]:
    """The snapshot's user and item vocabularies."""
    users = IdVocabulary(pd.read_parquet(directory / "users.parquet")["user_id"])
    items = IdVocabulary(pd.read_parquet(directory / "items.parquet")["item_id"])
    return users, items


def _write_vocabularies(directory: Path, users: IdVocabulary, items: IdVocabulary) -> None:
    pd.DataFrame({"user_id": users.ids.astype(str), "user_idx": np.arange(len(users))}).to_parquet(
        directory / "users.parquet", index=False
    )
    pd.DataFrame({"item_id": items.ids.astype(str), "item_idx": np.arange(len(items))}).to_parquet(
        directory / "items.parquet", index=False
    )


def save_features(features: FeatureSet, directory: Path) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    _write_vocabularies(directory, features.users, features.items)
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


@task(name="plan-features", cache_policy=NO_CACHE)
def plan_features_task(validated_path: str, out_dir: str, config: FeatureConfig) -> FeaturePlan:
    return plan_features(validated_path, out_dir, config)


@task(name="partition-ids", task_run_name="partition-ids-{part}", cache_policy=NO_CACHE)
def partition_ids_task(plan: FeaturePlan, part: int) -> dict:
    return partition_ids(plan, part)


@task(name="write-vocabularies", cache_policy=NO_CACHE)
def write_vocabularies_task(plan: FeaturePlan, ids: list[dict]) -> dict:
    from prefect import get_run_logger

    result = write_vocabularies(plan, ids)
    holdout = result["holdout"]
    log = get_run_logger().info if holdout["enough"] else get_run_logger().warning
    log("hold-out: %s", holdout["description"])
    return result


@task(name="encode-partition", task_run_name="encode-partition-{part}", cache_policy=NO_CACHE)
def encode_partition_task(plan: FeaturePlan, part: int, cutoff: str) -> dict:
    return encode_partition(plan, part, cutoff)


@task(name="finish-features", cache_policy=NO_CACHE)
def finish_features_task(plan: FeaturePlan, vocabularies: dict, counts: list[dict]) -> dict:
    return finish_features(plan, vocabularies, counts)
