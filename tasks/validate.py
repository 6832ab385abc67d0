"""Validate interactions (and the item / user tables): quarantine bad rows, drop duplicates,
reject bad batches.

``validate_interactions`` is the pure function (tests call it); ``validate_task`` is the thin
Prefect wrapper that reads the ingest Parquet files and writes the accepted and quarantined
tables. Great Expectations decides which rows fail (suites in ``expectations/``); its file
context under ``gx_root`` keeps the suites, every validation result and the Data Docs site,
rebuilt on every run. Row accounting always holds, per table:
rows read = accepted + quarantined + duplicates dropped.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError

from expectations.catalogs import build_items_suite, build_users_suite
from expectations.interactions import (
    ISSUE_COLUMN,
    REQUIRED_COLUMNS,
    SUITE_NAME,
    build_interactions_suite,
    frame_for_suite,
)
from expectations.outcome import TableResult, split_table, table_frame
from expectations.report import (
    batch_failure_message,
    quarantine_share_message,
    summary_markdown,
)
from expectations.runner import run_suites
from tasks.config import ValidateConfig
from tasks.errors import DataError, DataValidationError

VOLUME_HISTORY = "volume_history.json"
ARTIFACT_KEY = "recpipe-validation"


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
    flagged: dict[str, int] = field(default_factory=dict)
    items: TableResult | None = None
    users: TableResult | None = None
    volume: dict = field(default_factory=dict)

    @property
    def tables(self) -> list[TableResult]:
        main = TableResult(
            SUITE_NAME,
            self.accepted,
            self.quarantined,
            self.rows_read,
            self.rows_accepted,
            self.rows_quarantined,
            self.duplicates_dropped,
            self.flagged,
            self.expectations,
        )
        return [t for t in (main, self.items, self.users) if t is not None]

    @property
    def accounting(self) -> str:
        return " | ".join(t.accounting for t in self.tables)


def volume_floor(previous: Sequence[int], config: ValidateConfig) -> dict:
    """The least row count the volume check accepts, from the previous runs' row counts."""
    recent = [int(n) for n in previous][-config.volume_window :]
    if config.max_volume_drop is None or len(recent) < config.volume_min_runs:
        return {"floor": None, "previous_runs": len(recent)}
    average = sum(recent) / len(recent)
    floor = max(1, math.ceil(average * (1 - config.max_volume_drop)))
    return {"floor": floor, "trailing_average": round(average, 1), "previous_runs": len(recent)}


def validate_interactions(
    df: pd.DataFrame,
    *,
    gx_root: Path,
    config: ValidateConfig,
    now: pd.Timestamp | None = None,
    items: pd.DataFrame | None = None,
    users: pd.DataFrame | None = None,
    previous_volumes: Sequence[int] = (),
) -> ValidationResult:
    """Run the suites on ``df`` (and ``items`` / ``users`` when given; none is mutated).

    ``items`` is also the catalog for the unknown-item check. ``previous_volumes`` are the
    row counts of earlier runs, oldest first, for the volume check. Raises
    DataValidationError when a batch-level expectation fails, DataError when a column has
    an unusable dtype.
    """
    _check_required("interactions", df, REQUIRED_COLUMNS, "map the source's column names")
    for name, table, column in (("items", items, "item_id"), ("users", users, "user_id")):
        if table is not None:
            _check_required(name, table, (column,), f"give the {name} table a {column} column")
    rows_read = len(df)
    if rows_read == 0:
        raise DataValidationError(
            f"interactions: expect_table_row_count_to_be_between failed: the batch is empty "
            f"(0 rows, at least {config.min_rows} required); check that ingest read the right "
            "source and date (for a landing folder: did today's files arrive?)"
        )
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    has_value = "value" in df.columns
    has_issue = ISSUE_COLUMN in df.columns
    key = [*REQUIRED_COLUMNS, *(["event_type"] if "event_type" in df.columns else [])]
    volume = volume_floor(previous_volumes, config)
    frame = frame_for_suite(df, has_value, config, now, items)
    suite = build_interactions_suite(
        config,
        now,
        has_value=has_value,
        has_issue=has_issue,
        has_catalog=items is not None,
        dedup_key=key,
        volume_floor=volume["floor"],
    )
    batches = [(suite, frame)]
    if items is not None:
        batches.append((build_items_suite(config, now, list(items.columns)), table_frame(items)))
    if users is not None:
        batches.append((build_users_suite(config, list(users.columns)), table_frame(users)))
    results, docs_index = run_suites(Path(gx_root), batches)

    context = {"config": config, "now": now, "volume": volume, "docs": docs_index}
    for name, table in (("interactions", df), ("items", items), ("users", users)):
        if table is not None:
            _raise_on_batch_failures(name, results[name], table, context)
    main = split_table(SUITE_NAME, df, results[SUITE_NAME], key)
    _check_quarantine_share(main, config, docs_index)
    catalogs = {
        name: split_table(name, table, results[name], [column])
        for name, table, column in (("items", items, "item_id"), ("users", users, "user_id"))
        if table is not None
    }
    return ValidationResult(
        accepted=main.accepted,
        quarantined=main.quarantined,
        rows_read=main.rows_read,
        rows_accepted=main.rows_accepted,
        rows_quarantined=main.rows_quarantined,
        duplicates_dropped=main.duplicates_dropped,
        expectations=main.expectations,
        data_docs_index=docs_index,
        flagged=main.flagged,
        items=catalogs.get("items"),
        users=catalogs.get("users"),
        volume={**volume, "rows": rows_read},
    )


def _check_required(name: str, df: pd.DataFrame, required: Sequence[str], todo: str) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        sample = df.head(3).to_dict("records")
        raise DataValidationError(
            f"{name}: expect_column_to_exist failed: required column(s) {missing} missing; "
            f"found {list(df.columns)}; the table needs {list(required)}; sample rows: "
            f"{sample}; {todo} in ingest"
        )


def _raise_on_batch_failures(name: str, results: list, df: pd.DataFrame, context: dict) -> None:
    for r in results:
        meta = r.expectation_config.meta or {}
        if meta.get("level") == "batch" and not r.success:
            raise DataValidationError(batch_failure_message(name, r, meta["check"], df, context))


def _check_quarantine_share(
    table: TableResult, config: ValidateConfig, docs_index: Path | None
) -> None:
    if table.rows_quarantined / table.rows_read > config.max_quarantine_share:
        raise DataValidationError(quarantine_share_message(table, config, docs_index))


@task(name="validate", cache_policy=NO_CACHE)
def validate_task(
    raw_path: str,
    out_dir: str,
    gx_root: str,
    config: ValidateConfig,
    now_iso: str | None = None,
    *,
    items_path: str | None = None,
    users_path: str | None = None,
    accumulate: bool = False,
) -> dict:
    """Validate the ingested Parquet files; write the accepted and quarantined tables.

    Writes ``interactions.parquet`` and ``quarantine.parquet`` (plus ``items.parquet``,
    ``items_quarantine.parquet``, ``users.parquet``, ``users_quarantine.parquet`` when those
    paths are given) and ``validation_summary.json`` into ``out_dir``. Row counts of passing
    runs are kept in ``<gx_root>/volume_history.json``, keyed by ``out_dir``'s name
    (``run_date=...``), for the volume check. ``accumulate`` (incremental sources such as
    the landing folder): ``interactions.parquet`` becomes the latest earlier snapshot
    (``<out_dir>/../<prefix>=<earlier>/interactions.parquet``) plus today's accepted rows.
    A Markdown artifact summarises the run when called inside a Prefect flow or task run.
    """
    out = Path(out_dir)
    interactions = _read_input(raw_path, "interactions")
    items = _read_input(items_path, "items") if items_path else None
    users = _read_input(users_path, "users") if users_path else None
    history_file = Path(gx_root) / VOLUME_HISTORY
    history = _load_history(history_file)
    previous = [v["rows_read"] for k, v in sorted(history.items()) if k < out.name]
    try:
        result = validate_interactions(
            interactions,
            gx_root=Path(gx_root),
            config=config,
            now=pd.Timestamp(now_iso) if now_iso else None,
            items=items,
            users=users,
            previous_volumes=previous,
        )
    except DataValidationError as exc:
        publish_artifact(summary_markdown(None, failure=str(exc)))
        raise
    out.mkdir(parents=True, exist_ok=True)
    accepted, snapshot = result.accepted, None
    if accumulate:
        snapshot = _previous_snapshot(out)
        if snapshot is not None:
            accepted = pd.concat([pd.read_parquet(snapshot), accepted], ignore_index=True)
    paths = {
        "accepted_path": _write_parquet(accepted, out / "interactions.parquet"),
        "quarantine_path": _write_parquet(result.quarantined, out / "quarantine.parquet"),
    }
    for table in (result.items, result.users):
        if table is not None:
            paths[f"{table.name}_path"] = _write_parquet(
                table.accepted, out / f"{table.name}.parquet"
            )
            paths[f"{table.name}_quarantine_path"] = _write_parquet(
                table.quarantined, out / f"{table.name}_quarantine.parquet"
            )
    history[out.name] = {"rows_read": result.rows_read, "recorded_at": _now_iso()}
    _write_json(history, history_file)
    summary_dict = {
        "rows_read": result.rows_read,
        "rows_accepted": result.rows_accepted,
        "rows_quarantined": result.rows_quarantined,
        "duplicates_dropped": result.duplicates_dropped,
        "rows_total": len(accepted),
        "accounting": result.accounting,
        "flagged": result.flagged,
        "volume": result.volume,
        "history_snapshot": str(snapshot) if snapshot else None,
        "tables": {
            t.name: {
                "rows_read": t.rows_read,
                "rows_accepted": t.rows_accepted,
                "rows_quarantined": t.rows_quarantined,
                "duplicates_dropped": t.duplicates_dropped,
                "flagged": t.flagged,
            }
            for t in result.tables
        },
        **{k: str(v) for k, v in paths.items()},
        "data_docs_index": str(result.data_docs_index) if result.data_docs_index else None,
        "expectations": result.expectations,
    }
    _write_json(summary_dict, out / "validation_summary.json")
    summary_dict["artifact"] = publish_artifact(summary_markdown(result, summary=summary_dict))
    _logger().info("validate: %s; Data Docs %s", result.accounting, result.data_docs_index)
    return summary_dict


def publish_artifact(markdown: str) -> bool:
    """Create the validation Markdown artifact; only inside a flow or task run."""
    from prefect.context import FlowRunContext, TaskRunContext

    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        return False
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(
        key=ARTIFACT_KEY, markdown=markdown, description="recpipe data validation"
    )
    return True


def _logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except MissingContextError:  # called as validate_task.fn(...) outside a flow run
        return logging.getLogger(__name__)


def _read_input(path: str, name: str) -> pd.DataFrame:
    source = Path(path)
    if not source.is_file():
        raise DataError(
            f"validate: raw {name} file {source} not found; expected the Parquet file "
            "written by the ingest task; run ingest first or check the path"
        )
    return pd.read_parquet(source)


def _previous_snapshot(out: Path) -> Path | None:
    """The latest ``<prefix>=<earlier>/interactions.parquet`` next to ``out``."""
    prefix = out.name.split("=", 1)[0] + "="
    earlier = sorted(
        p for p in out.parent.glob(f"{prefix}*/interactions.parquet") if p.parent.name < out.name
    )
    return earlier[-1] if earlier else None


def _load_history(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        _logger().warning("validate: %s unreadable; the volume check starts afresh", path)
        return {}


def _now_iso() -> str:
    return pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")


def _write_json(data: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)


def _write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    """Write via a temporary file, so a crash never leaves a half-written table behind."""
    tmp = path.with_name(path.name + ".tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path
