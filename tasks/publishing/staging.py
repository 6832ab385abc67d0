"""A publish's files, before its commit point: the folders it writes are checked, and the
run's Parquet files are linked into ``<workspace>/publish/<publish id>/``, so a later run of
the date cannot overwrite them; the rows are read back from there in batches."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa

from tasks.publishing.stores import RECOMMENDATIONS, Output, Stores
from tasks.storage import lake
from tasks.storage.parquet import parquet_rows


def _link_or_copy(source: Path, dest: Path) -> None:
    """A hard link (instant, and immune to the source being replaced), else a copy."""
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def check_writable(stores: Stores, outputs: list[Output]) -> None:
    """Refuse before the commit point when a folder the publish writes is not writable (a
    read-only mount, a permission): the database would commit and the lake could not
    follow. Raises the ``OSError`` naming the folder."""
    folders = [stores.journal, stores.staged]
    for out in outputs:
        folders += [stores.lake(out.name), stores.lake(out.name) / "_delta_log"]
    for folder in folders:
        existing = next(p for p in (folder, *folder.parents) if p.exists())
        try:
            handle, probe = tempfile.mkstemp(dir=existing, prefix=".recpipe-probe-")
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(existing)) from exc
        os.close(handle)
        os.unlink(probe)


def stage_files(stores: Stores, pid: str, outputs: list[Output]) -> list[dict]:
    folder = stores.staged / pid
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    staged = []
    for out in outputs:
        files = lake.parquet_files(out.source)
        dest = folder / out.name
        dest.mkdir()
        for n, path in enumerate(files):
            _link_or_copy(path, dest / f"part-{n:05d}.parquet")
        rows = sum(parquet_rows(p) for p in files)
        staged.append(
            {"name": out.name, "kind": out.kind, "staged": stores.rel(dest), "rows": rows}
        )
    return staged


def staged_frames(
    source: Path, stamp: str | None, refreshed_at: datetime | None = None
) -> Iterator[pd.DataFrame]:
    for batch in lake.iter_batches(source):
        frame = lake.with_refreshed_at(pa.Table.from_batches([batch]), refreshed_at).to_pandas()
        if stamp is not None:
            frame["run_id"] = stamp
        yield frame


def refreshed_at_of(record: dict, kind: str) -> datetime | None:
    """When the rows of a recommendations table were published: the publish's intent (the
    same instant in both stores, also when recovery finishes it later)."""
    stamp = record.get("refreshed_at")
    return datetime.fromisoformat(stamp) if stamp and kind == RECOMMENDATIONS else None
