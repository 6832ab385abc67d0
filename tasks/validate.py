"""Validate the interactions table: quarantine bad rows, drop duplicates, reject bad batches.

``validate_interactions`` is the pure function (tests call it); ``validate_task`` is the thin
Prefect wrapper that reads the ingest Parquet file and writes the accepted and quarantined
tables. Great Expectations decides which rows fail; its file context under ``gx_root`` keeps
the suite, the validation results and the Data Docs site, rebuilt on every run.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError

from expectations.interactions import REQUIRED_COLUMNS, SUITE_NAME, build_interactions_suite
from tasks.config import ValidateConfig
from tasks.errors import DataError, DataValidationError

ROW_COLUMN = "__row__"
DATASOURCE_NAME = "recpipe"
BATCH_DEFINITION_NAME = "whole_dataframe"
SAMPLE_ROWS = 5


@dataclass(frozen=True)
class ValidationResult:
    """Outcome of one validation; rows_read == accepted + quarantined + duplicates_dropped."""

    accepted: pd.DataFrame
    quarantined: pd.DataFrame
    rows_read: int
    rows_accepted: int
    rows_quarantined: int
    duplicates_dropped: int
    expectations: list[dict]
    data_docs_index: Path | None


def validate_interactions(
    df: pd.DataFrame,
    *,
    gx_root: Path,
    config: ValidateConfig,
    now: pd.Timestamp | None = None,
) -> ValidationResult:
    """Run the interactions suite on ``df`` (not mutated) and split it into accepted/quarantined.

    Raises DataValidationError when a batch-level expectation fails (required columns, row
    count, quarantine share) and DataError when a column has an unusable dtype.
    """
    _check_required_columns(df)
    rows_read = len(df)
    if rows_read == 0:
        raise DataValidationError(
            f"interactions: expect_table_row_count_to_be_between failed: the batch is empty "
            f"(0 rows, at least {config.min_rows} required); check that ingest read the right "
            "source and date"
        )
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    has_value = "value" in df.columns
    frame = _frame_for_gx(df, has_value)
    suite = build_interactions_suite(config, now, has_value=has_value)
    results, docs_index = _run_checkpoint(frame, suite, Path(gx_root))

    _raise_on_gx_errors(results)
    summaries = [_summary(r) for r in results]
    _check_row_count(results, config, docs_index)

    reasons = _row_reasons(results)
    bad = np.array(sorted(reasons), dtype=np.int64)
    quarantined = df.iloc[bad].reset_index(drop=True)
    quarantined["reason"] = pd.array([reasons[i] for i in bad], dtype="str")
    good = np.ones(rows_read, dtype=bool)
    good[bad] = False
    clean = df.iloc[good]
    keys = [*REQUIRED_COLUMNS, *(["event_type"] if "event_type" in df.columns else [])]
    duplicated = clean.duplicated(subset=keys, keep="first")
    accepted = clean[~duplicated.to_numpy()].reset_index(drop=True)

    _check_quarantine_share(quarantined, bad, rows_read, config, docs_index)
    return ValidationResult(
        accepted=accepted,
        quarantined=quarantined,
        rows_read=rows_read,
        rows_accepted=len(accepted),
        rows_quarantined=len(quarantined),
        duplicates_dropped=int(duplicated.sum()),
        expectations=summaries,
        data_docs_index=docs_index,
    )


@task(name="validate", cache_policy=NO_CACHE)
def validate_task(
    raw_path: str,
    out_dir: str,
    gx_root: str,
    config: ValidateConfig,
    now_iso: str | None = None,
) -> dict:
    """Validate the ingested Parquet file; write interactions.parquet and quarantine.parquet."""
    source = Path(raw_path)
    if not source.is_file():
        raise DataError(
            f"validate: raw interactions file {source} not found; expected the Parquet file "
            "written by the ingest task; run ingest first or check the path"
        )
    result = validate_interactions(
        pd.read_parquet(source),
        gx_root=Path(gx_root),
        config=config,
        now=pd.Timestamp(now_iso) if now_iso else None,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    accepted_path = _write_parquet(result.accepted, out / "interactions.parquet")
    quarantine_path = _write_parquet(result.quarantined, out / "quarantine.parquet")
    _logger().info(
        "validate: %d rows read, %d accepted, %d quarantined, %d duplicates dropped; Data Docs %s",
        result.rows_read,
        result.rows_accepted,
        result.rows_quarantined,
        result.duplicates_dropped,
        result.data_docs_index,
    )
    return {
        "rows_read": result.rows_read,
        "rows_accepted": result.rows_accepted,
        "rows_quarantined": result.rows_quarantined,
        "duplicates_dropped": result.duplicates_dropped,
        "accepted_path": str(accepted_path),
        "quarantine_path": str(quarantine_path),
        "data_docs_index": str(result.data_docs_index) if result.data_docs_index else None,
        "expectations": result.expectations,
    }


def _logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except MissingContextError:  # called as validate_task.fn(...) outside a flow run
        return logging.getLogger(__name__)


def _check_required_columns(df: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataValidationError(
            f"interactions: required column(s) {missing} missing; found {list(df.columns)}; "
            f"the table needs {list(REQUIRED_COLUMNS)}: map the source's column names in ingest"
        )


def _frame_for_gx(df: pd.DataFrame, has_value: bool) -> pd.DataFrame:
    """The checked columns plus a row-number column, so GX's unexpected indices map to rows."""
    timestamp = df["timestamp"].dtype
    if not isinstance(timestamp, pd.DatetimeTZDtype):
        raise DataError(
            f"interactions: column 'timestamp' must be a timezone-aware UTC datetime; got dtype "
            f"{timestamp}; parse it in ingest with pd.to_datetime(..., utc=True, errors='coerce')"
        )
    columns = [*REQUIRED_COLUMNS, *(["value"] if has_value else [])]
    frame = df[columns].copy()
    if has_value:
        value = df["value"].dtype
        if not pd.api.types.is_numeric_dtype(value) or pd.api.types.is_bool_dtype(value):
            raise DataError(
                f"interactions: column 'value' must be numeric; got dtype {value}; convert it "
                "in ingest with pd.to_numeric(..., errors='coerce') or drop the column"
            )
        frame["value"] = frame["value"].astype("float64")  # nullable/int -> float64, NA -> NaN
    frame[ROW_COLUMN] = np.arange(len(frame), dtype=np.int64)
    return frame


def _run_checkpoint(frame: pd.DataFrame, suite: Any, gx_root: Path) -> tuple[list, Path | None]:
    """Validate ``frame`` through a checkpoint on the file context; return results, docs index."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction

    gx_root.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=gx_root)
    _quiet(context)
    # add_or_update_pandas resets the data source (assets included), so the asset and batch
    # definition are added fresh every run; the rest is add_or_update by name.
    source = context.data_sources.add_or_update_pandas(name=DATASOURCE_NAME)
    asset = source.add_dataframe_asset(name=SUITE_NAME)
    batch_definition = asset.add_batch_definition_whole_dataframe(name=BATCH_DEFINITION_NAME)
    suite = context.suites.add_or_update(suite)
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=SUITE_NAME, data=batch_definition, suite=suite)
    )
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=SUITE_NAME,
            validation_definitions=[definition],
            actions=[UpdateDataDocsAction(name="update_data_docs")],
            result_format={
                "result_format": "COMPLETE",
                "unexpected_index_column_names": [ROW_COLUMN],
            },
        )
    )
    run = checkpoint.run(batch_parameters={"dataframe": frame})
    (validation,) = run.run_results.values()
    return list(validation.results), _docs_index(context)


def _quiet(context: Any) -> None:
    """No usage statistics, no progress bars; saved once into the context's config."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    bars = context.variables.progress_bars
    if context.variables.analytics_enabled is False and bars is not None and not bars["globally"]:
        return
    context.variables.analytics_enabled = False
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    context.variables.save()


def _docs_index(context: Any) -> Path | None:
    for site in context.get_docs_sites_urls():
        url = urlparse(site.get("site_url") or "")
        if url.scheme == "file":
            return Path(url2pathname(url.path))
    return None


def _raise_on_gx_errors(results: list) -> None:
    for r in results:
        info = r.exception_info or {}
        # One flat dict, or one per metric when a metric failed to resolve.
        infos = [info] if "raised_exception" in info else list(info.values())
        messages = [i.get("exception_message") for i in infos if i.get("raised_exception")]
        if messages:
            cfg = r.expectation_config
            raise DataError(
                f"interactions: GX could not evaluate {cfg.type} on column "
                f"{cfg.kwargs.get('column')!r}: {messages[0]}; check that column's dtype in ingest"
            )


def _summary(r: Any) -> dict:
    cfg = r.expectation_config
    return {
        "expectation": cfg.type,
        "column": cfg.kwargs.get("column"),
        "success": bool(r.success),
        "unexpected_count": int(r.result.get("unexpected_count") or 0),
        "observed_value": r.result.get("observed_value"),
        "reason": (cfg.meta or {}).get("reason"),
    }


def _row_reasons(results: list) -> dict[int, str]:
    """Row number -> "reason; reason" for every row some row-level expectation flagged."""
    reasons: dict[int, list[str]] = {}
    for r in results:
        meta = r.expectation_config.meta or {}
        if meta.get("level") != "row":
            continue
        flagged = r.result.get("unexpected_index_list") or []
        if len(flagged) != int(r.result.get("unexpected_count") or 0):
            raise RuntimeError(
                f"GX listed {len(flagged)} of {r.result.get('unexpected_count')} unexpected rows "
                f"for {r.expectation_config.type}; expected the COMPLETE list"
            )
        for item in flagged:
            row_reasons = reasons.setdefault(int(item[ROW_COLUMN]), [])
            if meta["reason"] not in row_reasons:
                row_reasons.append(meta["reason"])
    return {row: "; ".join(rs) for row, rs in reasons.items()}


def _check_row_count(results: list, config: ValidateConfig, docs_index: Path | None) -> None:
    for r in results:
        if r.expectation_config.type == "expect_table_row_count_to_be_between" and not r.success:
            raise DataValidationError(
                f"interactions: expect_table_row_count_to_be_between failed: observed "
                f"{r.result.get('observed_value')} rows, at least {config.min_rows} required "
                f"(validate.min_rows); check that ingest read the full source, or lower "
                f"validate.min_rows; Data Docs: {docs_index}"
            )


def _check_quarantine_share(
    quarantined: pd.DataFrame,
    rows: np.ndarray,
    rows_read: int,
    config: ValidateConfig,
    docs_index: Path | None,
) -> None:
    share = len(quarantined) / rows_read
    if share <= config.max_quarantine_share:
        return
    counts = quarantined["reason"].value_counts()
    by_reason = ", ".join(f"{reason!r}: {n}" for reason, n in counts.items())
    samples = "; ".join(
        f"row {row}: {_describe_row(quarantined.iloc[i])}"
        for i, row in enumerate(rows[:SAMPLE_ROWS])
    )
    raise DataValidationError(
        f"interactions: quarantine share {share:.2%} ({len(quarantined)} of {rows_read} rows) "
        f"is above the threshold {config.max_quarantine_share:.2%} "
        "(validate.max_quarantine_share); "
        f"reasons: {by_reason}; sample rows: {samples}; nothing was written downstream; fix the "
        f"source or the ingest column mapping, or raise validate.max_quarantine_share if this "
        f"is expected; Data Docs: {docs_index}"
    )


def _describe_row(row: pd.Series) -> str:
    fields = [c for c in (*REQUIRED_COLUMNS, "value", "event_type") if c in row.index]
    values = ", ".join(
        f"{c}={row[c]!r}" if isinstance(row[c], str) else f"{c}={row[c]}" for c in fields
    )
    return f"{values} ({row['reason']})"


def _write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    """Write via a temporary file, so a crash never leaves a half-written table behind."""
    tmp = path.with_name(path.name + ".tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path
