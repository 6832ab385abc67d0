"""Parquet files written a piece at a time: one batch, one partition, one source file.

Large tables never exist whole in memory: their pieces are appended to a file
(:class:`ParquetAppender`) or files are joined into one (:func:`concat_parquet`), both
through a temporary name, so a crash never leaves a half-written table under the final
name.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Self

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def parquet_rows(path: str | Path) -> int:
    """Row count of a Parquet file, from its footer."""
    return pq.ParquetFile(path).metadata.num_rows


class ParquetAppender:
    """Frames appended to one Parquet file, under the first frame's schema.

    Use as a context manager; the file appears under ``path`` when the block ends
    without an error. ``restart()`` drops what was appended so far.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._tmp = self.path.with_name(self.path.name + ".tmp")
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0

    def append(self, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._tmp, table.schema)
        else:
            table = table.cast(self._writer.schema)
        self._writer.write_table(table)
        self.rows += len(frame)

    def restart(self) -> None:
        self._close()
        self._tmp.unlink(missing_ok=True)
        self.rows = 0

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        self._close()
        if kind is None and self._tmp.exists():
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)


def concat_parquet(sources: Sequence[Path], dest: Path, batch_rows: int = 1_000_000) -> int:
    """Write ``sources`` one after another into ``dest`` under one schema that holds every
    source's columns (null where a source lacks one); the rows written."""
    schemas = [pq.read_schema(s).remove_metadata() for s in sources]
    schema = pa.unify_schemas(schemas, promote_options="permissive")
    tmp = Path(dest).with_name(Path(dest).name + ".tmp")
    rows = 0
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for source in sources:
                for batch in pq.ParquetFile(source).iter_batches(batch_size=batch_rows):
                    table = pa.Table.from_batches([batch])
                    for field in schema:
                        if field.name not in table.column_names:
                            table = table.append_column(field, pa.nulls(len(table), field.type))
                    writer.write_table(table.select(schema.names).cast(schema))
                    rows += len(table)
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return rows
