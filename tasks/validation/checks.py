"""The checks of a validation run: the interactions and catalog suites run on a batch,
rows quarantined with their reasons, batch-level failures, the volume floor, the
quarantine share. Used by the stage (tasks/validate.py) on a whole batch and by
:mod:`tasks.validation.partitions` on a batch too large to hold at once."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from expectations.catalogs import build_items_suite, build_users_suite
from expectations.duplicates import duplicate_masks
from expectations.flags import Columns, check_masks
from expectations.interactions import (
    DUPLICATE_KEY,
    ISSUE_COLUMN,
    REQUIRED_COLUMNS,
    SUITE_NAME,
    build_interactions_suite,
    check_dtypes,
    interaction_checks,
    suite_frame,
    timestamp_bounds,
)
from expectations.outcome import (
    TableResult,
    check_counts,
    split_flagged,
    split_table,
    table_frame,
)
from expectations.report import (
    SAMPLE_ROWS,
    batch_failure_message,
    quarantine_share_message,
)
from expectations.runner import SuiteRunner
from expectations.thresholds import Thresholds
from tasks.config import ValidateConfig
from tasks.errors import DataError, DataValidationError
from tasks.storage.shared_files import locked
from tasks.validation.suites import pipeline_errors, suite_thresholds

VOLUME_HISTORY = "volume_history.json"
ARTIFACT_KEY = "recpipe-validation"


@dataclass(frozen=True)
class ValidationResult:
    """Outcome of one validation; rows_read == accepted + quarantined + duplicates_dropped."""

    # pandas or Arrow, as the input was; None when validated in partitions (written to files)
    accepted: pd.DataFrame | pa.Table | None
    quarantined: pd.DataFrame | pa.Table | None
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
    reasons: dict[str, int] = field(default_factory=dict)  # quarantined rows per reason
    samples: tuple[str, ...] = ()  # the first few quarantined rows, described

    @classmethod
    def of(
        cls,
        main: TableResult,
        catalogs: dict[str, TableResult],
        docs_index: Path | None,
        volume: dict,
    ) -> ValidationResult:
        """The result of the interactions table ``main`` and the item / user tables."""
        return cls(
            **_split_figures(main),
            data_docs_index=docs_index,
            items=catalogs.get("items"),
            users=catalogs.get("users"),
            volume=volume,
        )

    @property
    def tables(self) -> list[TableResult]:
        main = TableResult(SUITE_NAME, **_split_figures(self))
        return [t for t in (main, self.items, self.users) if t is not None]

    @property
    def accounting(self) -> str:
        return " | ".join(t.accounting for t in self.tables)


def _split_figures(result: TableResult | ValidationResult) -> dict[str, Any]:
    """What a table's split and the interactions' validation result both hold: every field
    of :class:`TableResult` but its name."""
    return {f.name: getattr(result, f.name) for f in fields(TableResult) if f.name != "name"}


def volume_floor(previous: Sequence[int], config: ValidateConfig) -> dict:
    """The least row count the volume check accepts, from the previous runs' row counts."""
    recent = [int(n) for n in previous][-config.volume_window :]
    if config.max_volume_drop is None or len(recent) < config.volume_min_runs:
        return {"floor": None, "previous_runs": len(recent)}
    average = sum(recent) / len(recent)
    floor = max(1, math.ceil(average * (1 - config.max_volume_drop)))
    return {"floor": floor, "trailing_average": round(average, 1), "previous_runs": len(recent)}


@pipeline_errors()
def validate_interactions(
    df: pd.DataFrame | pa.Table,
    *,
    gx_root: Path,
    config: ValidateConfig,
    now: pd.Timestamp,
    items: pd.DataFrame | None = None,
    users: pd.DataFrame | None = None,
    previous_volumes: Sequence[int] = (),
    runner: SuiteRunner | None = None,
    partition: bool = False,
    run_name: str | None = None,
) -> ValidationResult:
    """Run the suites on ``df`` (and ``items`` / ``users`` when given; none is mutated).

    ``df`` is a pandas frame or an Arrow table; the accepted and quarantined rows come
    back in the same kind. The row checks run vectorised on Arrow and GX validates what
    they flagged (``expectations/interactions.py``).

    ``items`` is also the catalog for the unknown-item check. ``previous_volumes`` are the
    row counts of earlier runs, oldest first, for the volume check. Raises
    DataValidationError when a batch-level expectation fails, DataError when a column has
    an unusable dtype.

    ``partition=True``: ``df`` is one user partition of a larger batch
    (``tasks/validation/partitions.py``). Its rows get every row-level check and its
    duplicates are dropped (a duplicate key is one user's, so it never spans partitions);
    the checks of the whole batch (row count, volume, staleness, quarantine share) and the
    item and user tables are left to the caller, and ``items`` serves only as the catalog.
    ``runner``: the caller's GX runner, which then also builds the Data Docs; otherwise
    this call makes its own, whose results are labelled ``run_name`` in the Data Docs.
    """
    _check_tables(df, items, users)
    limits = suite_thresholds(config)
    rows_read = len(df)
    if rows_read == 0 and not partition:
        raise DataValidationError(
            f"interactions: expect_table_row_count_to_be_between failed: the batch is empty "
            f"(0 rows, at least {config.min_rows} required); check that ingest read the right "
            "source and date (for a landing folder: did today's files arrive?)"
        )
    as_pandas = isinstance(df, pd.DataFrame)
    table = _ids_as_text(arrow_table(df) if as_pandas else df)
    check_dtypes(table.schema)
    now = pd.Timestamp(now)  # the run's "now" (end of its run date), never the machine's
    names = table.column_names
    key = [*REQUIRED_COLUMNS, *(["event_type"] if "event_type" in names else [])]
    volume = volume_floor(previous_volumes, config)
    checks = interaction_checks(
        limits,
        now,
        has_value="value" in names,
        has_issue=ISSUE_COLUMN in names,
        has_catalog=items is not None,
    )
    columns = Columns(table)
    masks = check_masks(checks, columns, timestamp_bounds(limits, now), catalog_ids(items))
    clean = ~np.logical_or.reduce([*masks.values(), np.zeros(rows_read, dtype=bool)])
    repeated, dropped = duplicate_masks(columns, key, clean)
    stale_check = not partition and config.max_event_age_days is not None
    frame = suite_frame(columns, checks, masks, repeated, key, stale_check)
    del columns
    suite = build_interactions_suite(
        limits,
        now,
        checks,
        dedup_key=key,
        volume_floor=volume["floor"],
        batch_checks=not partition,
    )
    own_runner = runner is None
    runner = SuiteRunner(Path(gx_root), run_name, lock=locked) if runner is None else runner
    results = {SUITE_NAME: runner.run(suite, frame, result_format="SUMMARY")}
    del frame
    counts = {name: int(mask.sum()) for name, mask in masks.items()}
    check_counts(SUITE_NAME, results[SUITE_NAME], {**counts, DUPLICATE_KEY: int(repeated.sum())})
    catalogs = {} if partition else validate_catalogs(runner, limits, now, items, users)
    docs_index = runner.finish() if own_runner else None

    context = {"limits": limits, "now": now, "volume": volume, "docs": docs_index}
    if batch_failures(results[SUITE_NAME]):
        raise_on_batch_failures(
            "interactions", results[SUITE_NAME], _sample_rows(table, results), context
        )
    for catalog in catalogs.values():
        catalog.raise_on_batch_failures(context)
    main = split_flagged(SUITE_NAME, table, results[SUITE_NAME], masks, dropped)
    if as_pandas:
        # split_flagged returns Arrow tables, never None
        assert main.accepted is not None and main.quarantined is not None
        main = replace(
            main, accepted=main.accepted.to_pandas(), quarantined=main.quarantined.to_pandas()
        )
    if not partition:
        check_quarantine_share(main, limits, docs_index)
    splits = {name: catalog.split() for name, catalog in catalogs.items()}
    return ValidationResult.of(main, splits, docs_index, {**volume, "rows": rows_read})


def arrow_table(df: pd.DataFrame) -> pa.Table:
    """``df`` as an Arrow table (its index left out); DataError for a column Arrow cannot
    hold (mixed types in one column)."""
    try:
        return pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(
            f"interactions: a column holds values of mixed types ({exc}); found dtypes "
            f"{df.dtypes.astype(str).to_dict()}; give each column one type in ingest"
        ) from exc


def _ids_as_text(table: pa.Table) -> pa.Table:
    """Id columns of another type (a frame of Python ints, an all-null column) as text,
    as GX read them (``astype(str)``)."""
    for name in ("user_id", "item_id"):
        kind = table.schema.field(name).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            i = table.schema.get_field_index(name)
            table = table.set_column(i, name, table.column(name).cast(pa.large_string()))
    return table


def catalog_ids(items: pd.DataFrame | None) -> pa.Array | None:
    """The item catalog's ids as text, for the unknown-item check."""
    if items is None:
        return None
    return pa.array(items["item_id"].dropna().astype(str).unique(), pa.large_string())


def _sample_rows(table: pa.Table, results: dict) -> pd.DataFrame:
    """The rows a batch failure message shows: the newest few for stale data, else the
    first few."""
    stale = any(
        (r.expectation_config.meta or {}).get("check") == "stale" and not r.success
        for r in results[SUITE_NAME]
    )
    if stale:
        order = pc.sort_indices(table, sort_keys=[("timestamp", "descending", "at_end")])
        return table.take(order[:SAMPLE_ROWS]).to_pandas()
    return table.slice(0, SAMPLE_ROWS).to_pandas()


@dataclass(frozen=True)
class CatalogCheck:
    """An item or user table and its GX results, before it is split."""

    name: str
    table: pd.DataFrame
    results: list
    key: str

    def raise_on_batch_failures(self, context: dict) -> None:
        raise_on_batch_failures(self.name, self.results, self.table, context)

    def split(self) -> TableResult:
        return split_table(self.name, self.table, self.results, [self.key])


def validate_catalogs(
    runner: SuiteRunner,
    limits: Thresholds,
    now: pd.Timestamp,
    items: pd.DataFrame | None,
    users: pd.DataFrame | None,
) -> dict[str, CatalogCheck]:
    """Run the items and users suites on the tables given."""
    out = {}
    if items is not None:
        suite = build_items_suite(limits, now, list(items.columns))
        out["items"] = CatalogCheck(
            "items", items, runner.run(suite, table_frame(items)), "item_id"
        )
    if users is not None:
        suite = build_users_suite(limits, list(users.columns))
        out["users"] = CatalogCheck(
            "users", users, runner.run(suite, table_frame(users)), "user_id"
        )
    return out


@pipeline_errors()
def check_columns(
    df: pd.DataFrame | pa.Table,
    items: pd.DataFrame | None,
    users: pd.DataFrame | None,
) -> None:
    """Raise the error validation would for ``df``'s columns (required ones, dtypes): a
    batch's first rows stand for the batch, whose columns all its rows share."""
    _check_tables(df, items, users)
    check_dtypes(arrow_table(df).schema if isinstance(df, pd.DataFrame) else df.schema)


def _check_tables(
    df: pd.DataFrame | pa.Table, items: pd.DataFrame | None, users: pd.DataFrame | None
) -> None:
    _check_required("interactions", df, REQUIRED_COLUMNS, "map the source's column names")
    for name, table, column in (("items", items, "item_id"), ("users", users, "user_id")):
        if table is not None:
            _check_required(name, table, (column,), f"give the {name} table a {column} column")


def _check_required(
    name: str, df: pd.DataFrame | pa.Table, required: Sequence[str], todo: str
) -> None:
    columns = list(df.column_names if isinstance(df, pa.Table) else df.columns)
    missing = [c for c in required if c not in columns]
    if missing:
        head = df.slice(0, 3).to_pandas() if isinstance(df, pa.Table) else df.head(3)
        sample = head.to_dict("records")
        raise DataValidationError(
            f"{name}: expect_column_to_exist failed: required column(s) {missing} missing; "
            f"found {columns}; the table needs {list(required)}; sample rows: "
            f"{sample}; {todo} in ingest"
        )


def batch_failures(results: list) -> list:
    """The failed expectations that reject the whole batch."""
    return [
        r
        for r in results
        if (r.expectation_config.meta or {}).get("level") == "batch" and not r.success
    ]


def raise_on_batch_failures(name: str, results: list, df: pd.DataFrame, context: dict) -> None:
    for r in batch_failures(results):
        check = r.expectation_config.meta["check"]
        raise DataValidationError(batch_failure_message(name, r, check, df, context))


def check_quarantine_share(table: TableResult, limits: Thresholds, docs_index: Path | None) -> None:
    if table.rows_quarantined / table.rows_read > limits.max_quarantine_share:
        raise DataValidationError(quarantine_share_message(table, limits, docs_index))
