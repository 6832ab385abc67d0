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
import scipy.sparse as sp
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
from tasks.errors import DataError
from tasks.storage.cache import StageResult


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
        tuple(history_columns), (valid["user_idx"].to_numpy(), valid["item_idx"].to_numpy())
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
    _write_vocabularies(Path(plan.out_dir), users, items)
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


def _write_vocabularies(directory: Path, users: pa.Array, items: pa.Array) -> None:
    """users.parquet (user_id, user_idx) and items.parquet (item_id, item_idx)."""
    for name, ids in (("user", users), ("item", items)):
        table = pa.table(
            {f"{name}_id": ids.cast(ID_TYPE), f"{name}_idx": np.arange(len(ids), dtype=np.int64)}
        )
        pq.write_table(table, directory / f"{name}s.parquet")


def save_features(features: FeatureSet, directory: Path) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    _write_vocabularies(
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


@task(name="plan-features", cache_policy=NO_CACHE)
def plan_features_task(validated_path: str, out_dir: str, config: FeatureConfig) -> FeaturePlan:
    return plan_features(validated_path, out_dir, config)


@task(name="partition-ids", task_run_name="partition-ids-{part}", cache_policy=NO_CACHE)
def partition_ids_task(plan: FeaturePlan, part: int) -> dict:
    return partition_ids(plan, part)


@task(name="write-vocabularies", cache_policy=NO_CACHE)
def write_vocabularies_task(plan: FeaturePlan, ids: list[dict]) -> dict:
    return write_vocabularies(plan, ids, get_run_logger())


@task(name="encode-partition", task_run_name="encode-partition-{part}", cache_policy=NO_CACHE)
def encode_partition_task(plan: FeaturePlan, part: int, cutoff: str) -> dict:
    return encode_partition(plan, part, cutoff)


@task(name="finish-features", cache_policy=NO_CACHE)
def finish_features_task(
    plan: FeaturePlan, vocabularies: dict, counts: list[dict]
) -> FeaturesResult:
    return finish_features(plan, vocabularies, counts)
