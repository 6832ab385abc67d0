"""Publish: the recommendation tables as Parquet (by run date) and as database tables.

Tables: ``recommendations`` (the product's output, see the README) and
``similar_items`` (item pages). Each is written to both stores for one run date:

* Parquet: ``<tables>/<name>/run_date=YYYY-MM-DD/part-0.parquet``; the partition is
  written to a hidden staging folder and moved into place with ``os.replace``.
* Database (SQLite in the workspace by default, any SQLAlchemy URL, e.g.
  PostgreSQL): rows go to a staging table first; then one transaction replaces
  the run date's rows from the staging table, drops run dates beyond
  ``keep_runs`` and drops the staging table. Readers see the old rows or the new
  ones, never a mix; a failure rolls back and the previous rows keep serving.
  A view ``<name>_latest`` shows the newest run date.

The Parquet partition is swapped in only after the database transaction
committed, so a failure leaves both stores as they were.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.database import make_engine, sql_table
from tasks.errors import PublishError

PARTITIONING = ds.partitioning(pa.schema([("run_date", pa.date32())]), flavor="hive")
SIMILAR_COLUMNS = ["run_id", "run_date", "item_id", "rank", "similar_item_id", "score"]


# -- Parquet ---------------------------------------------------------------------------
def stage_parquet(source: pd.DataFrame | Path, root: Path, run_date: date) -> Path:
    """Copy a frame or a Parquet file into a hidden staging folder under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".staging-{run_date.isoformat()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        if isinstance(source, pd.DataFrame):
            table = pa.Table.from_pandas(source.drop(columns=["run_date"]), preserve_index=False)
            pq.write_table(table, staging / "part-0.parquet")
        else:  # streamed, so memory holds one record batch, not the table
            writer = None
            try:
                for batch in iter_batches(source):
                    table = pa.Table.from_batches([batch])
                    if "run_date" in table.column_names:
                        table = table.drop_columns(["run_date"])
                    writer = writer or pq.ParquetWriter(staging / "part-0.parquet", table.schema)
                    writer.write_table(table)
            finally:
                if writer is not None:
                    writer.close()
            if writer is None:
                schema = pq.read_schema(_parquet_files(source)[0])
                if "run_date" in schema.names:
                    schema = schema.remove(schema.get_field_index("run_date"))
                pq.write_table(schema.empty_table(), staging / "part-0.parquet")
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def _parquet_files(source: Path) -> list[Path]:
    """A Parquet file, or a folder's ``*.parquet`` files in name order."""
    source = Path(source)
    files = sorted(source.glob("*.parquet")) if source.is_dir() else [source]
    if not files:
        raise FileNotFoundError(f"{source}: no Parquet files to publish")
    return files


def iter_batches(source: Path, batch_size: int = 200_000) -> Any:
    """Record batches of a Parquet file or folder of part files, in order."""
    for path in _parquet_files(source):
        yield from pq.ParquetFile(path).iter_batches(batch_size=batch_size)


def swap_parquet(staging: Path, root: Path, run_date: date) -> Path:
    """Move a staged partition into place as ``root/run_date=YYYY-MM-DD``."""
    final = root / f"run_date={run_date.isoformat()}"
    old = None
    if final.exists():
        old = root / f".old-{run_date.isoformat()}-{uuid.uuid4().hex[:8]}"
        os.replace(final, old)
    try:
        os.replace(staging, final)
    except OSError:
        if old is not None:
            os.replace(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


def prune_parquet(root: Path, keep_runs: int) -> list[str]:
    """Delete all but the newest ``keep_runs`` run-date partitions; return what went."""
    parts = sorted(p for p in root.glob("run_date=*") if p.is_dir())
    gone = parts[:-keep_runs] if len(parts) > keep_runs else []
    for part in gone:
        shutil.rmtree(part, ignore_errors=True)
    return [p.name for p in gone]


def read_parquet_table(root: Path, run_date: date | None = None) -> pd.DataFrame:
    """A published Parquet table (one date, or all), with ``run_date`` as a date."""
    dataset = ds.dataset(
        root,
        format="parquet",
        partitioning=PARTITIONING,
        exclude_invalid_files=True,
        ignore_prefixes=[".", "_"],
    )
    filt = ds.field("run_date") == pa.scalar(run_date, pa.date32()) if run_date else None
    frame = dataset.to_table(filter=filt).to_pandas(types_mapper=pd.ArrowDtype)
    columns = [c for c in frame.columns if c != "run_date"]
    return frame[columns[:1] + ["run_date"] + columns[1:]]


# -- database --------------------------------------------------------------------------
def _insert_rows(conn: Any, table: Any, frame: pd.DataFrame, run_date: date) -> int:
    """Bulk insert through the DB-API's executemany with plain tuples.

    SQLAlchemy's per-row parameter processing and ``DataFrame.to_dict`` dominate
    the cost for large tables; column lists zipped into tuples are much cheaper.
    """
    names = [c.name for c in table.columns]
    dialect = conn.engine.dialect
    stamp = run_date.isoformat() if dialect.name == "sqlite" else run_date
    columns = []
    for name in names:
        if name == "run_date":
            columns.append([stamp] * len(frame))
            continue
        values = frame[name]
        if values.dtype.kind in "if":
            columns.append(values.to_numpy().tolist())
        else:
            columns.append(values.astype(object).where(values.notna(), None).tolist())
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    quoted = ", ".join(dialect.identifier_preparer.quote(n) for n in names)
    sql = (
        f"INSERT INTO {dialect.identifier_preparer.quote(table.name)} ({quoted}) "
        f"VALUES ({', '.join([marker] * len(names))})"
    )
    rows = list(zip(*columns))
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        # COPY is several times faster than executemany on PostgreSQL.
        cursor = conn.connection.driver_connection.cursor()
        target = dialect.identifier_preparer.quote(table.name)
        with cursor.copy(f"COPY {target} ({quoted}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return len(rows)
    for start in range(0, len(rows), 50_000):
        conn.exec_driver_sql(sql, rows[start : start + 50_000])
    return len(rows)


def publish_database(
    frames: Iterable[pd.DataFrame] | pd.DataFrame,
    url: str,
    name: str,
    run_date: date,
    kind: str = "recommendations",
    keep_runs: int | None = None,
    before_swap: Any = None,
) -> int:
    """Stage ``frames`` (rows of one run date) and swap them in; return rows written.

    ``before_swap`` is called between staging and the swap (tests inject failures there).
    """
    import sqlalchemy as sa

    frames = [frames] if isinstance(frames, pd.DataFrame) else frames
    metadata = sa.MetaData()
    target = sql_table(name, kind, metadata)
    staging = sql_table(f"{name}__staging", kind, metadata)
    engine = make_engine(url)
    rows = 0
    try:
        with engine.begin() as conn:
            target.create(conn, checkfirst=True)
            staging.drop(conn, checkfirst=True)
            staging.create(conn)
        for frame in frames:
            with engine.begin() as conn:
                rows += _insert_rows(conn, staging, frame, run_date)
        if before_swap is not None:
            before_swap()
        with engine.begin() as conn:
            conn.execute(sa.delete(target).where(target.c.run_date == run_date))
            conn.execute(sa.insert(target).from_select(staging.c.keys(), sa.select(staging)))
            if keep_runs is not None:
                dates = sa.select(target.c.run_date).distinct().order_by(target.c.run_date.desc())
                keep = [r[0] for r in conn.execute(dates.limit(keep_runs))]
                conn.execute(sa.delete(target).where(target.c.run_date.not_in(keep)))
            conn.execute(sa.text(f'DROP VIEW IF EXISTS "{name}_latest"'))
            conn.execute(
                sa.text(
                    f'CREATE VIEW "{name}_latest" AS SELECT * FROM "{name}" '
                    f'WHERE run_date = (SELECT MAX(run_date) FROM "{name}")'
                )
            )
    except sa.exc.SQLAlchemyError as exc:
        raise PublishError(
            f"publishing table {name!r} to {engine.url.render_as_string(hide_password=True)} "
            f"failed: {exc.__class__.__name__}: {str(exc).splitlines()[0]}; the previous rows "
            "still serve; fix the database and re-run the same date"
        ) from exc
    finally:
        # Dropped in its own transaction, after the swap: inside the swap's (large)
        # transaction SQLite's drop grew faster than the table (6.6x the time for
        # 2.5x the rows, 4M to 10M), after it in proportion.
        _drop_quietly(engine, staging)
        engine.dispose()
    return rows


def _drop_quietly(engine: Any, table: Any) -> None:
    import sqlalchemy as sa

    try:
        with engine.begin() as conn:
            table.drop(conn, checkfirst=True)
    except sa.exc.SQLAlchemyError as exc:  # cleanup must not hide the real error
        logging.getLogger(__name__).warning("could not drop %s: %s", table.name, exc)


def read_database_table(
    url: str, name: str, run_date: date | None = None, kind: str = "recommendations"
) -> pd.DataFrame:
    import sqlalchemy as sa

    table = sql_table(name, kind)
    query = sa.select(table)
    if run_date is not None:
        query = query.where(table.c.run_date == run_date)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return pd.read_sql(query, conn)
    finally:
        engine.dispose()


# -- both --------------------------------------------------------------------------------
def publish(
    table: pd.DataFrame | Path,
    parquet_root: Path,
    url: str,
    name: str,
    run_date: date,
    kind: str = "recommendations",
    keep_runs: int | None = None,
    before_swap: Any = None,
) -> dict:
    """Publish one table to both stores; a failure leaves both as they were."""
    staging = stage_parquet(table, parquet_root, run_date)
    try:
        if isinstance(table, pd.DataFrame):
            frames: Any = [table]
        else:
            frames = (b.to_pandas() for b in iter_batches(table))
        rows = publish_database(
            list(frames) if kind != "recommendations" else frames,
            url,
            name,
            run_date,
            kind,
            keep_runs,
            before_swap,
        )
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    final = swap_parquet(staging, parquet_root, run_date)
    pruned = prune_parquet(parquet_root, keep_runs) if keep_runs else []
    return {"parquet": str(final), "rows": rows, "pruned": pruned}


@task(name="publish", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def publish_task(
    scores_path: str,
    similar_path: str | None,
    tables_root: str,
    database_url: str,
    table_name: str,
    similar_table: str,
    run_date: date,
    keep_runs: int,
) -> dict:
    out = publish(
        Path(scores_path),
        Path(tables_root) / table_name,
        database_url,
        table_name,
        run_date,
        keep_runs=keep_runs,
    )
    result = {**out, "database": database_url, "table": table_name}
    if similar_path:
        similar = publish(
            Path(similar_path),
            Path(tables_root) / similar_table,
            database_url,
            similar_table,
            run_date,
            kind="similar_items",
            keep_runs=keep_runs,
        )
        result["similar"] = {**similar, "table": similar_table}
    return result
