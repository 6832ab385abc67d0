"""Publish: the recommendations table as Parquet (by run date) and as a database table.

Both writes are atomic:

* Parquet: the new partition is written to a hidden staging folder, then moved
  into place with ``os.replace``; an older partition for the same date is moved
  aside first and deleted only after the swap.
* Database: one transaction deletes the run date's rows and inserts the new
  ones; readers see the old rows or the new ones, and a failure rolls back.

The Parquet partition is staged first and swapped in only after the database
transaction committed, so a failure leaves both stores as they were.
"""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.errors import PublishError
from tasks.score import TABLE_COLUMNS

PARTITIONING = ds.partitioning(pa.schema([("run_date", pa.date32())]), flavor="hive")


def stage_parquet(table: pd.DataFrame, root: Path, run_date: date) -> Path:
    """Write ``table`` to a hidden staging folder under ``root``; readers ignore it."""
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".staging-{run_date.isoformat()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        frame = table.drop(columns=["run_date"])
        pq.write_table(
            pa.Table.from_pandas(frame, preserve_index=False), staging / "part-0.parquet"
        )
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


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


def publish_parquet(table: pd.DataFrame, root: Path, run_date: date) -> Path:
    """Write ``table`` as partition ``root/run_date=YYYY-MM-DD/`` atomically."""
    return swap_parquet(stage_parquet(table, root, run_date), root, run_date)


def publish(table: pd.DataFrame, parquet_root: Path, url: str, name: str, run_date: date) -> dict:
    """Publish to both stores: stage Parquet, commit the database, then swap Parquet in.

    If the database transaction fails, the staged Parquet is dropped and both
    stores keep the previous tables.
    """
    staging = stage_parquet(table, parquet_root, run_date)
    try:
        rows = publish_database(table, url, name, run_date)
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    final = swap_parquet(staging, parquet_root, run_date)
    return {"parquet": str(final), "rows": rows}


def read_parquet_table(root: Path, run_date: date | None = None) -> pd.DataFrame:
    """The published Parquet recommendations (one date, or all), with ``run_date`` as a date."""
    dataset = ds.dataset(
        root,
        format="parquet",
        partitioning=PARTITIONING,
        exclude_invalid_files=True,
        ignore_prefixes=[".", "_"],
    )
    filt = ds.field("run_date") == pa.scalar(run_date, pa.date32()) if run_date else None
    frame = dataset.to_table(filter=filt).to_pandas(types_mapper=pd.ArrowDtype)
    return frame[TABLE_COLUMNS]


def _sql_table(name: str) -> Any:
    import sqlalchemy as sa

    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("run_date", sa.Date, nullable=False, index=True),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("item_id", sa.String(255), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("strategy", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
    )


def publish_database(table: pd.DataFrame, url: str, name: str, run_date: date) -> int:
    """Replace ``run_date``'s rows of table ``name`` in one transaction; return rows written."""
    import sqlalchemy as sa

    sql_table = _sql_table(name)
    engine = sa.create_engine(url)
    records = table.assign(
        run_date=run_date,
        reason=table["reason"].astype(object).where(table["reason"].notna(), None),
    ).to_dict("records")
    try:
        with engine.begin() as conn:
            sql_table.metadata.create_all(conn, checkfirst=True)
            conn.execute(sa.delete(sql_table).where(sql_table.c.run_date == run_date))
            if records:
                conn.execute(sa.insert(sql_table), records)
    except sa.exc.SQLAlchemyError as exc:
        raise PublishError(
            f"publishing table {name!r} to {engine.url.render_as_string(hide_password=True)} failed: "
            f"{exc.__class__.__name__}: {exc}; the previous rows still serve; fix the database "
            "and re-run the same date"
        ) from exc
    finally:
        engine.dispose()
    return len(records)


def read_database_table(url: str, name: str, run_date: date | None = None) -> pd.DataFrame:
    import sqlalchemy as sa

    sql_table = _sql_table(name)
    query = sa.select(sql_table)
    if run_date is not None:
        query = query.where(sql_table.c.run_date == run_date)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return pd.read_sql(query, conn)
    finally:
        engine.dispose()


@task(name="publish", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def publish_task(
    scores_path: str, tables_root: str, database_url: str, table_name: str, run_date: date
) -> dict:
    table = pd.read_parquet(scores_path)
    result = publish(table, Path(tables_root) / table_name, database_url, table_name, run_date)
    return {**result, "database": database_url, "table": table_name}
