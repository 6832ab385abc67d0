"""One user partition of the feature snapshot, on Arrow tables (tasks/features.py).

Raw ids become vocabulary indices with a hash lookup (``index_in``), the positive flags
and the hold-out come from NumPy arrays over the columns, the rows are put in time order
with one stable multi-key sort, and the split is three ``take``s: no pandas objects on
the way, so nothing turns a million timestamps into Python objects.

The order and the vocabularies are those the pandas implementation gave: ids sorted as
Python sorts strings (Arrow compares UTF-8 bytes, which orders code points the same),
rows by (timestamp, user index, item index), ties in input order.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from tasks.data.holdout import HOUR_NS, holdout_mask, partition_stats, stable_order
from tasks.data.positives import positive_table_mask

if TYPE_CHECKING:
    from tasks.config import FeatureConfig

PARTITION_COLUMNS = ("user_id", "item_id", "timestamp", "value", "event_type")
ID_TYPE = pa.large_string()
PARTS = ("train", "seen", "valid")


def read_events(path: str | Path, columns: tuple[str, ...] = PARTITION_COLUMNS) -> pa.Table:
    """Those of ``columns`` that the Parquet file (or folder) at ``path`` has."""
    dataset = ds.dataset(path, format="parquet")
    return dataset.to_table(columns=[c for c in columns if c in dataset.schema.names])


def vocabulary(ids: list[pa.Array | pa.ChunkedArray]) -> pa.Array:
    """The sorted distinct ids of ``ids`` (index i is the dense id of element i)."""
    chunks = [
        chunk.cast(ID_TYPE)
        for part in ids
        for chunk in (part.chunks if isinstance(part, pa.ChunkedArray) else [part])
    ]
    distinct = pc.unique(pa.chunked_array(chunks, type=ID_TYPE))
    return distinct.take(pc.sort_indices(distinct))


def distinct(column: pa.ChunkedArray) -> pa.Array:
    """A column's distinct ids, as the vocabulary's type."""
    return pc.unique(column.cast(ID_TYPE))


def lookup(ids: pa.ChunkedArray, vocabulary: pa.Array) -> np.ndarray:
    """Dense indices of ``ids`` in the sorted ``vocabulary``; -1 for ids not in it."""
    found = pc.index_in(ids.cast(ID_TYPE), value_set=vocabulary)
    return pc.fill_null(found, -1).to_numpy().astype(np.int64, copy=False)


def instants(column: pa.ChunkedArray) -> tuple[np.ndarray, int]:
    """A timestamp column as int64 counts of its unit, and the unit in nanoseconds."""
    unit_ns = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[column.type.unit]
    return column.cast(pa.int64()).to_numpy(), unit_ns


def user_codes(table: pa.Table) -> np.ndarray:
    """A code per row, equal for the rows of one user (partition-local)."""
    return pc.dictionary_encode(table["user_id"].combine_chunks()).indices.to_numpy()


def partition_summary(table: pa.Table, config: FeatureConfig) -> dict:
    """The hold-out summaries of one partition (tasks/data/holdout.py)."""
    users = user_codes(table)
    positive = positive_table_mask(table, config.positive, config.positive_min_value, users)
    times, unit_ns = instants(table["timestamp"])
    hours = times // (HOUR_NS // unit_ns)
    return partition_stats(users, hours, config.latest_share, config.latest_min_events, positive)


def encode_events(
    table: pa.Table, users: pa.Array, items: pa.Array, config: FeatureConfig | None = None
) -> tuple[pa.Table, np.ndarray]:
    """user_idx, item_idx, timestamp, value (1 without a value column) in time order, and
    whether each row counts as positive under ``config`` (tasks/data/positives.py; all
    without a config)."""
    user_idx = lookup(table["user_id"], users)
    item_idx = lookup(table["item_id"], items)
    if config is None:
        positive = np.ones(table.num_rows, dtype=bool)
    else:
        rule, min_value = config.positive, config.positive_min_value
        positive = positive_table_mask(table, rule, min_value, user_idx)
    times, _ = instants(table["timestamp"])
    order = stable_order(times, user_idx, item_idx)  # ties keep the input order
    if "value" in table.column_names:
        value = table["value"].cast(pa.float64()).to_numpy()
    else:
        value = np.ones(table.num_rows)
    encoded = pa.table(
        {
            "user_idx": user_idx[order],
            "item_idx": item_idx[order],
            "timestamp": table["timestamp"].take(order),
            "value": pa.array(value[order], from_pandas=True),  # NaN -> null, as pandas writes
        }
    )
    return encoded, positive[order]


def split_table(encoded: pa.Table, positive: np.ndarray, choice: dict | str) -> dict:
    """``train`` (positive events before the hold-out), ``seen`` (the other events before
    it) and ``valid`` (positive hold-out events) of :func:`encode_events`' output."""
    times, unit_ns = instants(encoded["timestamp"])
    users, items = encoded["user_idx"].to_numpy(), encoded["item_idx"].to_numpy()
    held = holdout_mask(users, times, unit_ns, choice, items)
    rows = {"train": ~held & positive, "seen": ~held & ~positive, "valid": held & positive}
    return {name: encoded.take(np.flatnonzero(mask)) for name, mask in rows.items()}


def last_event(table: pa.Table) -> object:
    return pc.max(table["timestamp"]).as_py()
