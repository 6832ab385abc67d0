"""User shards: the interactions split by user so that scoring holds one shard at a time.

Scoring needs each user's whole history together, but not every user at once. One
streaming pass over the validated interactions (record batches, never the whole table)
sends each row to shard ``hash(user_id) % n_shards`` (pandas' fixed-key SipHash, so the
same user lands in the same shard on every run and every machine) and writes one
Parquet file per shard. ``n_shards`` follows from the row count (``rows_per_shard``
each on average), so a shard's size, and with it the scoring stage's memory, stays the
same when the number of users grows. The shards are independent units of work: scored
one after another in process, or fanned out as tasks on a Dask cluster.

The pass also records the newest event, so that every shard measures "the last N days"
(active users, recent popularity) from the same instant.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

COLUMNS = ("user_id", "item_id", "timestamp")
BUFFER_ROWS = 1_000_000  # rows buffered over all shards before they are written out


@dataclass(frozen=True)
class ShardSet:
    paths: list[str]  # one Parquet file per shard (a shard may hold no rows)
    rows: int
    newest: str | None  # ISO timestamp of the newest event, None without timestamps

    @property
    def newest_timestamp(self) -> pd.Timestamp | None:
        return None if self.newest is None else pd.Timestamp(self.newest)


def shard_of(user_ids: np.ndarray | pd.Series, n_shards: int) -> np.ndarray:
    """Shard index of each user id (stable across runs, processes and machines)."""
    values = np.asarray(user_ids, dtype=object)
    return (pd.util.hash_array(values, categorize=True) % np.uint64(n_shards)).astype(np.int64)


def shard_of_column(user_ids: pa.Array | pa.ChunkedArray, n_shards: int) -> np.ndarray:
    """:func:`shard_of` of an Arrow column: each distinct id is hashed once."""
    if isinstance(user_ids, pa.ChunkedArray):
        user_ids = user_ids.combine_chunks()
    codes = pc.dictionary_encode(user_ids, null_encoding="encode")  # nulls: one user
    per_id = shard_of(codes.dictionary.to_numpy(zero_copy_only=False), n_shards)
    return per_id[codes.indices.to_numpy(zero_copy_only=False)]


def shard_count(rows: int, rows_per_shard: int) -> int:
    if rows_per_shard < 1:
        raise ValueError(f"rows_per_shard must be >= 1, got {rows_per_shard}")
    return max(1, math.ceil(rows / rows_per_shard))


def shard_interactions(
    source: str | Path,
    out_dir: str | Path,
    rows_per_shard: int = 2_000_000,
    batch_rows: int = 1_000_000,
    columns: Sequence[str] = COLUMNS,
) -> ShardSet:
    """Split ``source`` (a Parquet file or folder) into user shards under ``out_dir``,
    keeping those of ``columns`` it has."""
    dataset = ds.dataset(source, format="parquet")
    columns = [c for c in columns if c in dataset.schema.names]
    missing = {"user_id", "item_id"} - set(columns)
    if missing:
        raise ValueError(
            f"{source}: columns {sorted(missing)} missing; found {dataset.schema.names}; "
            "shard the validated interactions"
        )
    rows = dataset.count_rows()
    n_shards = shard_count(rows, rows_per_shard)
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    if n_shards == 1:  # nothing to split: the source is the one shard
        newest = _newest(dataset) if "timestamp" in columns else None
        return ShardSet([str(source)], rows, newest)
    out.mkdir(parents=True)
    schema = pa.schema([dataset.schema.field(c) for c in columns])
    paths = [out / f"shard-{s:05d}.parquet" for s in range(n_shards)]
    writers = [pq.ParquetWriter(p, schema) for p in paths]
    buffers: list[list[pa.Table]] = [[] for _ in range(n_shards)]
    buffered = 0
    latest = None

    def flush() -> None:
        for s, parts in enumerate(buffers):
            if parts:
                writers[s].write_table(pa.concat_tables(parts))
                buffers[s] = []

    try:
        for batch in dataset.to_batches(columns=columns, batch_size=batch_rows):
            if batch.num_rows == 0:
                continue
            table = pa.Table.from_batches([batch])
            if "timestamp" in columns:
                latest = _later(latest, pc.max(table["timestamp"]).as_py())
            shard = shard_of_column(table["user_id"], n_shards)
            order = pc.sort_indices(pa.array(shard))  # stable: rows keep their order
            counts = np.bincount(shard, minlength=n_shards)
            table = table.take(order)
            bounds = np.concatenate([[0], np.cumsum(counts)])
            for s in np.flatnonzero(counts).tolist():
                buffers[s].append(table.slice(bounds[s], counts[s]))
            buffered += table.num_rows
            if buffered >= BUFFER_ROWS:
                flush()
                buffered = 0
        flush()
    finally:
        for writer in writers:
            writer.close()
        pa.default_memory_pool().release_unused()
    return ShardSet(
        [str(p) for p in paths], rows, None if latest is None else pd.Timestamp(latest).isoformat()
    )


def _later(a: Any, b: Any) -> Any:
    """The later of two Arrow ``as_py()`` values (timestamps), ``None`` meaning none yet."""
    return b if a is None or (b is not None and b > a) else a


def _newest(dataset: ds.Dataset) -> str | None:
    newest = None
    for batch in dataset.to_batches(columns=["timestamp"]):
        newest = _later(newest, pc.max(batch["timestamp"]).as_py())
    return None if newest is None else pd.Timestamp(newest).isoformat()


def read_shard(path: str | Path) -> pd.DataFrame:
    """A shard's rows (the columns scoring reads)."""
    columns = (
        [c for c in COLUMNS if c in pq.read_schema(path).names] if Path(path).is_file() else None
    )
    return pd.read_parquet(path, columns=columns)
