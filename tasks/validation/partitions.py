"""Validate a large batch in user partitions, so memory follows the partition, not the batch.

A batch of more than ``validate.part_rows`` interactions is split by user in one
streaming pass (``tasks/data/shards.py``: the same hash as the feature partitions and the
scoring shards). Then:

1. the checks of the whole batch run first, on one row per partition (its row count and
   its newest event inside the accepted time range; see
   ``expectations.interactions.build_partitioned_batch_suite``), together with the item
   and user tables: a failed batch stops here, before any partition is validated;
2. each partition gets the interactions suite without those whole-batch checks
   (:func:`tasks.validation.checks.validate_interactions` with ``partition=True``). A duplicate
   key and the per-user event count (bot check) belong to one user, so they are exact
   within a partition; the first copy of a duplicate is the first in the input, as the
   pass keeps each user's rows in input order;
3. the quarantine share is checked on the totals; only then are the accepted and
   quarantined rows written (each partition's rows together, partitions in turn).

The accounting (rows read = accepted + quarantined + duplicates dropped) is the sum of
the partitions'; every partition's validation result is kept in the GX store and shown
in the Data Docs, under the batch's run name.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from expectations.common import ROW_COLUMN
from expectations.flags import timestamp_outside
from expectations.interactions import (
    PARTITION_NEWEST,
    PARTITION_ROWS,
    REQUIRED_COLUMNS,
    SUITE_NAME,
    build_partitioned_batch_suite,
    timestamp_bounds,
)
from expectations.outcome import SAMPLES, TableResult
from expectations.runner import SuiteRunner, summary
from expectations.thresholds import Thresholds
from tasks.config import ValidateConfig
from tasks.data.shards import shard_interactions
from tasks.storage.shared_files import locked
from tasks.validation.checks import (
    ValidationResult,
    batch_failures,
    check_columns,
    check_quarantine_share,
    raise_on_batch_failures,
    validate_catalogs,
    validate_interactions,
    volume_floor,
)
from tasks.validation.suites import pipeline_errors, suite_thresholds

NEWEST_SAMPLES = 3  # newest rows kept for the stale-data message


@pipeline_errors()
def validate_in_partitions(
    raw_path: str | Path,
    work_dir: Path,
    *,
    gx_root: Path,
    config: ValidateConfig,
    now: pd.Timestamp,
    items: pd.DataFrame | None = None,
    users: pd.DataFrame | None = None,
    previous_volumes: Sequence[int] = (),
    run_name: str | None = None,
) -> tuple[ValidationResult, list[Path], list[Path]]:
    """Validate ``raw_path`` in user partitions under ``work_dir`` (created, left for the
    caller to remove). Returns the result (its ``accepted`` and ``quarantined`` are None)
    and the Parquet files holding the accepted and the quarantined rows, in order.
    Raises DataValidationError as :func:`tasks.validation.checks.validate_interactions` does.
    ``run_name`` labels the results of this batch in the Data Docs."""
    now = pd.Timestamp(now)  # the run's "now" (end of its run date), never the machine's
    limits = suite_thresholds(config)
    columns = tuple(pq.read_schema(raw_path).names)
    head = pa.Table.from_batches(
        [next(pq.ParquetFile(raw_path).iter_batches(batch_size=NEWEST_SAMPLES))]
    )
    check_columns(head, items, users)  # a wrong column fails before the pass
    shards = shard_interactions(
        raw_path, work_dir / "partitions", config.part_rows, columns=columns
    )
    runner = SuiteRunner(Path(gx_root), run_name, lock=locked)
    volume = volume_floor(previous_volumes, config)
    figures, newest_rows = _partition_figures(shards.paths, limits, now)
    batch_suite = build_partitioned_batch_suite(limits, now, volume["floor"])
    batch_results = runner.run(batch_suite, figures)
    catalogs = validate_catalogs(runner, limits, now, items, users)
    if batch_failures(batch_results) or any(batch_failures(c.results) for c in catalogs.values()):
        context = {"limits": limits, "now": now, "volume": volume, "docs": runner.finish()}
        raise_on_batch_failures("interactions", batch_results, newest_rows, context)
        for table in catalogs.values():
            table.raise_on_batch_failures(context)

    out_dir = work_dir / "validated"
    out_dir.mkdir(parents=True, exist_ok=True)
    parts: list[TableResult] = []
    accepted_files, quarantine_files = [], []
    for i, path in enumerate(shards.paths):
        frame = pq.read_table(path)
        if not frame.num_rows:
            continue
        part = validate_interactions(
            frame,
            gx_root=gx_root,
            config=config,
            now=now,
            items=items,
            runner=runner,
            partition=True,
        )
        del frame
        main = part.tables[0]
        accepted_files.append(_write(main.accepted, out_dir / f"accepted-{i:05d}.parquet"))
        quarantine_files.append(_write(main.quarantined, out_dir / f"quarantine-{i:05d}.parquet"))
        parts.append(
            replace(
                main,
                accepted=None,
                quarantined=None,
                samples=tuple(f"partition {i}, {s}" for s in main.samples),
            )
        )
        del part, main  # one partition's rows in memory at a time
    docs_index = runner.finish()
    main = combine_partitions(parts, [summary(r) for r in batch_results])
    check_quarantine_share(main, limits, docs_index)
    tables = {name: table.split() for name, table in catalogs.items()}
    volume = {**volume, "rows": main.rows_read, "partitions": len(shards.paths)}
    result = ValidationResult.of(main, tables, docs_index, volume)
    return result, accepted_files, quarantine_files


def combine_partitions(parts: list[TableResult], batch_expectations: list[dict]) -> TableResult:
    """The batch's table result from its partitions' (same suite, so the same expectations
    in the same order): counts summed, an expectation met when every partition met it."""
    flagged: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for part in parts:
        flagged.update(part.flagged)
        reasons.update(part.reasons)
    expectations = list(batch_expectations)
    for per_part in zip(*(part.expectations for part in parts), strict=False):
        first = per_part[0]
        observed = {repr(e["observed_value"]) for e in per_part}
        expectations.append(
            {
                **first,
                "success": all(e["success"] for e in per_part),
                "unexpected_count": sum(e["unexpected_count"] for e in per_part),
                "observed_value": first["observed_value"] if len(observed) == 1 else None,
            }
        )
    samples = tuple(s for part in parts for s in part.samples)[:SAMPLES]
    return TableResult(
        name=SUITE_NAME,
        accepted=None,
        quarantined=None,
        rows_read=sum(p.rows_read for p in parts),
        rows_accepted=sum(p.rows_accepted for p in parts),
        rows_quarantined=sum(p.rows_quarantined for p in parts),
        duplicates_dropped=sum(p.duplicates_dropped for p in parts),
        flagged=dict(flagged),
        expectations=expectations,
        reasons=dict(reasons),
        samples=samples,
    )


def _partition_figures(
    paths: list[str], limits: Thresholds, now: pd.Timestamp
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per partition (rows, newest acceptable event), and the newest rows."""
    oldest, newest = timestamp_bounds(limits, now)
    figures, newest_rows = [], []
    for path in paths:
        frame = pq.read_table(path, columns=[*REQUIRED_COLUMNS])
        ts = frame.column("timestamp")
        outside = timestamp_outside(ts, oldest, before=True)
        outside |= timestamp_outside(ts, newest, before=False)
        newest_valid = pc.max(ts.filter(pa.array(~outside))).as_py()
        figures.append({PARTITION_ROWS: frame.num_rows, PARTITION_NEWEST: newest_valid})
        order = pc.sort_indices(frame, sort_keys=[("timestamp", "descending", "at_end")])
        newest_rows.append(frame.take(order[:NEWEST_SAMPLES]).to_pandas())
        del frame
    table = pd.DataFrame(figures)
    table[PARTITION_ROWS] = table[PARTITION_ROWS].astype("int64")
    table[PARTITION_NEWEST] = pd.to_datetime(table[PARTITION_NEWEST], utc=True)
    table[ROW_COLUMN] = range(len(table))
    rows = pd.concat(newest_rows, ignore_index=True) if newest_rows else pd.DataFrame()
    return table, rows


def _write(table: pa.Table, path: Path) -> Path:
    pq.write_table(table, path)
    return path
