"""Build features: id vocabularies, a global temporal train/validation split, Parquet.

The snapshot's layout, ``FeatureSet`` and its readers and writers are in
``tasks/data/snapshot.py``: ``build_features`` returns a ``FeatureSet`` in memory, the
nightly flow writes the snapshot in user partitions (below).

Both ways run on Arrow tables (tasks/data/encode.py): pandas only where a caller hands
in or takes out a DataFrame (``build_features``, ``FeatureSet``).
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from models.vocab import IdVocabulary
from tasks.config import FeatureConfig
from tasks.data.encode import (
    ID_TYPE,
    PARTITION_COLUMNS,
    distinct,
    encode_events,
    last_event,
    partition_summary,
    read_events,
    split_table,
    vocabulary,
)
from tasks.data.holdout import evidence_counts, size_holdout
from tasks.data.snapshot import FeatureSet, write_vocabulary_files
from tasks.errors import DataError
from tasks.storage.cache import StageResult


def build_features(interactions: pd.DataFrame, config: FeatureConfig) -> FeatureSet:
    """Vocabularies over all validated events, then a split at ``max(ts) - validation_days``
    (in memory; the nightly flow builds the same snapshot in partitions, see below)."""
    if interactions.empty:
        raise DataError(NO_INTERACTIONS)
    table = _as_table(interactions)
    user_ids, item_ids = vocabulary([table["user_id"]]), vocabulary([table["item_id"]])
    encoded, positive = encode_events(table, user_ids, item_ids, config)
    last = pd.Timestamp(last_event(table))
    choice = size_holdout([partition_summary(table, config)], last, config)
    parts = split_table(encoded, positive, choice)
    cutoff = pd.Timestamp(choice["cutoff"]) if choice["cutoff"] else pd.NaT
    span = pc.min_max(table["timestamp"])
    first = pd.Timestamp(span["min"].as_py())
    check_train_size(parts["train"].num_rows, cutoff, (first, last), config)
    n_users, n_events = _evidence(parts)
    frames = {name: rows.to_pandas() for name, rows in parts.items()}
    return FeatureSet(
        users=_vocabulary(user_ids),
        items=_vocabulary(item_ids),
        train=frames["train"],
        valid=frames["valid"],
        cutoff=cutoff,
        holdout={**choice, "users": n_users, "events": n_events},
        seen=frames["seen"] if config.positive != "all" else None,
    )


NO_INTERACTIONS = (
    "build features: no validated interactions; expected at least one row; "
    "check the validation report and the source"
)


def encode(interactions: pd.DataFrame, users: IdVocabulary, items: IdVocabulary) -> pd.DataFrame:
    """user_idx, item_idx, timestamp, value (1 without a value column), in time order."""
    user_ids, item_ids = (pa.array(v.ids.astype(str), ID_TYPE) for v in (users, items))
    encoded, _ = encode_events(_as_table(interactions), user_ids, item_ids)
    return encoded.to_pandas()


def _as_table(interactions: pd.DataFrame) -> pa.Table:
    columns = [c for c in PARTITION_COLUMNS if c in interactions]
    return pa.Table.from_pandas(interactions[columns], preserve_index=False)


def _vocabulary(ids: pa.Array) -> IdVocabulary:
    return IdVocabulary.from_sorted(ids.to_numpy(zero_copy_only=False))


def _evidence(parts: dict[str, pa.Table]) -> tuple[int, int]:
    """:func:`evidence_counts` of a split: history is train and seen."""
    history = [parts[name] for name in ("train", "seen") if name in parts]
    history_columns = [
        np.concatenate([t[c].to_numpy() for t in history]) for c in ("user_idx", "item_idx")
    ]
    valid = parts["valid"]
    return evidence_counts(
        (history_columns[0], history_columns[1]),
        (valid["user_idx"].to_numpy(), valid["item_idx"].to_numpy()),
    )


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
    table = read_events(plan.partitions[part])
    first_last = pc.min_max(table["timestamp"])
    return {
        "holdout_stats": partition_summary(table, plan.config),
        "users": distinct(table["user_id"]),
        "items": distinct(table["item_id"]),
        "rows": table.num_rows,
        "first": first_last["min"].as_py(),
        "last": first_last["max"].as_py(),
    }


def write_vocabularies(
    plan: FeaturePlan,
    ids: list[dict],
    logger: logging.Logger | logging.LoggerAdapter | None = None,
) -> dict:
    """Merge the partitions' ids into the snapshot's vocabularies; fix the cutoff (and log
    what is held out: a warning when there is too little evidence)."""
    users = vocabulary([part["users"] for part in ids])
    items = vocabulary([part["items"] for part in ids])
    write_vocabulary_files(Path(plan.out_dir), users, items)
    first = min(pd.Timestamp(part["first"]) for part in ids if part["rows"])
    last = max(pd.Timestamp(part["last"]) for part in ids if part["rows"])
    stats = [part["holdout_stats"] for part in ids if part["rows"]]
    holdout = size_holdout(stats, last, plan.config)
    log = logger or logging.getLogger(__name__)
    (log.info if holdout["enough"] else log.warning)("hold-out: %s", holdout["description"])
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
    table = read_events(plan.partitions[part])
    encoded, positive = encode_events(table, users, items, plan.config)
    del table
    parts = split_table(encoded, positive, cutoff)
    if plan.config.positive == "all":
        del parts["seen"]
    counts = {}
    for name, rows in parts.items():
        folder = out / f"{name}.parquet"
        folder.mkdir(exist_ok=True)
        pq.write_table(rows, folder / f"part-{part:05d}.parquet")
        counts[f"n_{name}"] = rows.num_rows
    n_users, n_events = _evidence(parts)
    return {**counts, "holdout_users": n_users, "holdout_events": n_events}


class FeaturesResult(StageResult):
    """The feature snapshot: its folder and what ``meta.json`` says of it."""

    features_dir: str
    partitions: int
    cutoff: str | None
    holdout: dict[str, Any] | None
    n_users: int
    n_items: int
    first_event: str
    last_event: str
    n_train: int
    n_valid: int
    n_seen_not_positive: int = 0
    social: dict[str, Any] | None = None  # the graph written beside (tasks/data/social.py)
    # the item content written beside (tasks/data/content_features.py)
    content: dict[str, Any] | None = None


def finish_features(plan: FeaturePlan, vocabularies: dict, counts: list[dict]) -> FeaturesResult:
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
    return FeaturesResult(features_dir=plan.out_dir, partitions=len(plan.partitions), **meta)


def _vocabularies(out_dir: str) -> tuple[pa.Array, pa.Array]:
    """The snapshot's vocabularies (sorted ids), read once per process and version of the
    files (a Dask worker encodes many partitions; a re-run rewrites them in the same
    folder)."""
    stamp = tuple(
        (p.stat().st_mtime_ns, p.stat().st_size)
        for p in (Path(out_dir) / "users.parquet", Path(out_dir) / "items.parquet")
    )
    return _read_vocabularies(out_dir, stamp)


@functools.lru_cache(maxsize=2)
def _read_vocabularies(out_dir: str, stamp: tuple) -> tuple[pa.Array, pa.Array]:
    folder = Path(out_dir)
    return tuple(
        pq.read_table(folder / f"{name}s.parquet", columns=[f"{name}_id"])[f"{name}_id"]
        .combine_chunks()
        .cast(ID_TYPE)
        for name in ("user", "item")
    )


plan_features_task = task(name="plan-features", cache_policy=NO_CACHE)(plan_features)


partition_ids_task = task(
    name="partition-ids", task_run_name="partition-ids-{part}", cache_policy=NO_CACHE
)(partition_ids)


@task(name="write-vocabularies", cache_policy=NO_CACHE)
def write_vocabularies_task(plan: FeaturePlan, ids: list[dict]) -> dict:
    return write_vocabularies(plan, ids, get_run_logger())


encode_partition_task = task(
    name="encode-partition", task_run_name="encode-partition-{part}", cache_policy=NO_CACHE
)(encode_partition)


finish_features_task = task(name="finish-features", cache_policy=NO_CACHE)(finish_features)
