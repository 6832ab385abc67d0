"""The content digest of a published date: its row count and a 128-bit hash of its rows,
the same whichever store the rows are read from.

A digest is a hash of the *multiset* of rows: each row is hashed on its own (every
column of the table contract except ``run_date``, in a fixed order), and the row hashes
are added up modulo 2**64, twice (the second sum over a remixed hash). Two sets of rows
have the same digest exactly when they hold the same rows, whatever their order: what
sorting the rows and hashing them would give, without the sort. A value is hashed from
its canonical form, so the stores' types do not matter: strings by their UTF-8 bytes
(FNV-1a 64, then a murmur3 finaliser), integers as int64, scores as float64 bits,
``refreshed_at`` as microseconds since the epoch (UTC; SQLite's text, PostgreSQL's
``timestamptz`` and the lake's timestamps give the same number), nulls as one constant.

Everything runs on Arrow columns with numpy; a string column is hashed once per distinct
value (dictionary encoding), so a date of a million rows costs a fraction of a second.
The digests of what a publish wrote are kept in the publish log and the lake commit, so
later checks compare against them without reading the rows again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

RECOMMENDATIONS = "recommendations"
COLUMNS = {
    RECOMMENDATIONS: (
        "run_id",
        "user_id",
        "rank",
        "item_id",
        "score",
        "model_name",
        "model_version",
        "strategy",
        "reason",
        "refreshed_at",
    ),
    "similar_items": ("run_id", "item_id", "rank", "similar_item_id", "score"),
}
INTEGERS = ("rank",)
FLOATS = ("score",)
TIMES = ("refreshed_at",)

_NULL = np.uint64(0x9E3779B97F4A7C15)
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_ROW_MULT = np.uint64(0xFF51AFD7ED558CCD)
_SECOND = np.uint64(0xC2B2AE3D27D4EB4F)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Digest:
    """A date's rows in one store: how many, and the hash of their content."""

    rows: int
    digest: str

    def __str__(self) -> str:
        return f"{self.rows} rows, {self.digest[:12]}"


EMPTY = Digest(0, "0" * 32)


def _fmix(k: np.ndarray) -> np.ndarray:
    """murmur3's 64-bit finaliser, on a uint64 array (wrapping arithmetic)."""
    k = k ^ (k >> np.uint64(33))
    k = k * np.uint64(0xFF51AFD7ED558CCD)
    k = k ^ (k >> np.uint64(33))
    k = k * np.uint64(0xC4CEB9FE1A85EC53)
    return k ^ (k >> np.uint64(33))


def string_hashes(values: pa.Array) -> np.ndarray:
    """FNV-1a 64 of each value's UTF-8 bytes, finalised; ``values`` has no nulls."""
    values = pc.cast(values, pa.large_string())
    n = len(values)
    if n == 0:
        return np.zeros(0, np.uint64)
    _, offsets_buf, data_buf = values.buffers()
    offsets = np.frombuffer(offsets_buf, np.int64)[values.offset : values.offset + n + 1]
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    h = np.full(n, _FNV_OFFSET, np.uint64)
    for i in range(int(lengths.max(initial=0))):
        live = np.flatnonzero(lengths > i)
        h[live] = (h[live] ^ data[starts[live] + i].astype(np.uint64)) * _FNV_PRIME
    return _fmix(h ^ lengths.astype(np.uint64))


def _micros(value: object) -> int:
    """Microseconds since the epoch (UTC) of a stored time: a datetime, or its text as
    SQLite (``2026-05-01 12:00:00.123000``, naive UTC) or PostgreSQL (``...+00``) write it."""
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _by_value(column: pa.ChunkedArray | pa.Array, hash_values: object) -> np.ndarray:
    """Hash each distinct value once (``hash_values``: dictionary -> uint64 array), then
    give every row its value's hash; nulls get the null constant."""
    if isinstance(column, pa.ChunkedArray):
        parts = [_by_value(chunk, hash_values) for chunk in column.chunks]
        return np.concatenate(parts) if parts else np.zeros(0, np.uint64)
    encoded = column if pa.types.is_dictionary(column.type) else pc.dictionary_encode(column)
    hashed = hash_values(encoded.dictionary)  # type: ignore[operator]
    indices = encoded.indices
    out = np.full(len(indices), _NULL, np.uint64)
    valid = np.asarray(pc.is_valid(indices))
    if len(hashed):
        out[valid] = hashed[np.asarray(indices.fill_null(0))[valid]]
    return out


def _time_hashes(dictionary: pa.Array) -> np.ndarray:
    if pa.types.is_timestamp(dictionary.type):
        if dictionary.type.tz is None:
            dictionary = dictionary.cast(pa.timestamp(dictionary.type.unit, "UTC"))
        micros = pc.cast(dictionary, pa.timestamp("us", "UTC")).cast(pa.int64())
        return _fmix(np.asarray(micros).astype(np.int64).view(np.uint64))
    values = np.array([_micros(v) for v in dictionary.to_pylist()], np.int64)
    return _fmix(values.view(np.uint64))


def column_hashes(table: pa.Table, name: str) -> np.ndarray:
    """One uint64 per row for column ``name`` (a column the table lacks is all nulls)."""
    if name not in table.column_names:
        return np.full(table.num_rows, _NULL, np.uint64)
    column = table.column(name)
    if name in INTEGERS:
        ints = np.asarray(pc.cast(column, pa.int64()).fill_null(0)).astype(np.int64)
        return _fmix(ints.view(np.uint64))
    if name in FLOATS:
        floats = np.asarray(pc.cast(column, pa.float64()).fill_null(0.0)).astype(np.float64)
        floats = floats + 0.0  # -0.0 and 0.0 are one score
        return _fmix(floats.view(np.uint64))
    if name in TIMES:
        return _by_value(column, _time_hashes)
    if pa.types.is_dictionary(column.type):
        return _by_value(column, lambda values: string_hashes(pc.cast(values, pa.string())))
    return _by_value(pc.cast(column, pa.string()), string_hashes)


def row_hashes(table: pa.Table, kind: str) -> np.ndarray:
    """One uint64 per row, from the contract's columns of ``kind`` in their fixed order."""
    h = np.full(table.num_rows, _NULL, np.uint64)
    for position, name in enumerate(COLUMNS[kind]):
        h = _fmix(h * _ROW_MULT + column_hashes(table, name) + np.uint64(position))
    return h


class Accumulator:
    """Adds up row hashes batch by batch (the digest does not depend on the batches)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.rows = 0
        self.first = np.uint64(0)
        self.second = np.uint64(0)

    def add(self, table: pa.Table | pa.RecordBatch) -> None:
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        if table.num_rows == 0:
            return
        h = row_hashes(table, self.kind)
        with np.errstate(over="ignore"):
            self.first = np.uint64(self.first + h.sum(dtype=np.uint64))
            self.second = np.uint64(self.second + _fmix(h ^ _SECOND).sum(dtype=np.uint64))
        self.rows += table.num_rows

    def result(self) -> Digest:
        return Digest(self.rows, f"{int(self.first):016x}{int(self.second):016x}")


def digest_of(tables: Iterable[pa.Table] | pa.Table, kind: str) -> Digest:
    """The digest of the rows of ``tables`` (one Arrow table or several batches of one)."""
    acc = Accumulator(kind)
    for table in [tables] if isinstance(tables, pa.Table) else tables:
        acc.add(table)
    return acc.result()


def staged_digest(
    source: Path, kind: str, stamp: str | None, refreshed_at: datetime | None
) -> Digest:
    """What a publish writes from its staged files: their rows with ``run_id`` set to
    ``stamp`` and ``refreshed_at`` filled in, as both stores receive them."""
    from tasks.storage import lake

    acc = Accumulator(kind)
    for batch in lake.iter_batches(source):
        table = lake.with_refreshed_at(pa.Table.from_batches([batch]), refreshed_at)
        if stamp is not None:
            table = table.drop_columns([c for c in ("run_id",) if c in table.column_names])
            table = table.append_column("run_id", pa.array([stamp] * len(table), pa.string()))
        acc.add(table)
    return acc.result()
