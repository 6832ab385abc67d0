"""The Great Expectations suite for the interactions table, as Python code.

Row-level expectations (``meta["level"] == "row"``) quarantine the rows they flag with
``meta["reason"]``; batch-level ones reject the whole batch; see ``expectations/common.py``
for all levels.

The row checks are computed vectorised on the Arrow table (``expectations/flags.py``), and
GX validates what they found: the batch it gets holds one column per row check (named by
the check, e.g. ``user_id is blank``) with the failing rows' values as text and null
elsewhere, and each row check is an ``expect_column_values_to_be_null`` on its column.
``meta["source"]`` keeps the rule the check stands for (expectation type, column,
arguments), which summaries report; the Data Docs show each check's description, its
unexpected count and sample failing values. The duplicate-key check works the same way
on ``duplicate key`` (each row whose key is not unique: every copy). The stale-data
check reads ``__timestamp_valid__``: the timestamp where it is inside the accepted range,
else null (it looks at the newest *acceptable* event, not a future outlier).

``great_expectations`` is imported inside the builder (it takes ~6 s), so importing this
module stays cheap.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from expectations.common import batch, duplicates, row
from expectations.errors import ColumnTypeError, ThresholdError
from expectations.flags import (
    NULL_TEXT,
    Columns,
    RowCheck,
    failing_values,
    flag_column,
    id_checks,
)
from expectations.thresholds import Thresholds

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuite
    from great_expectations.expectations import Expectation

SUITE_NAME = "interactions"
BATCH_SUITE_NAME = "interactions_batch"  # the whole-batch checks of a partitioned batch
PARTITION_ROWS = "rows"
PARTITION_NEWEST = "newest_valid"
REQUIRED_COLUMNS = ("user_id", "item_id", "timestamp")
ISSUE_COLUMN = "ingest_issue"
USER_EVENTS = "__user_events__"
IN_CATALOG = "__in_catalog__"
TIMESTAMP_VALID = "__timestamp_valid__"
DUPLICATE_KEY = "duplicate key"
INGEST_REASON = "flagged at ingest"
# A between-check on +/- the largest float is how GX says "finite" (inf falls outside it).
_FLOAT_MAX = sys.float_info.max


def timestamp_bounds(limits: Thresholds, now: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Oldest and newest accepted event time, both in UTC."""
    try:
        oldest = _as_utc(pd.Timestamp(limits.min_timestamp))
        if pd.isna(oldest):
            raise ValueError("empty or NaT")
    except (ValueError, TypeError) as exc:
        raise ThresholdError(
            f"validate.min_timestamp {limits.min_timestamp!r} is not a timestamp ({exc}); "
            "expected ISO 8601 such as '1995-01-01T00:00:00Z'; fix the config"
        ) from exc
    newest = _as_utc(now) + pd.Timedelta(hours=limits.future_tolerance_hours)
    return oldest, newest


def interaction_checks(
    limits: Thresholds,
    now: pd.Timestamp,
    *,
    has_value: bool = True,
    has_issue: bool = False,
    has_catalog: bool = False,
) -> list[RowCheck]:
    """The row checks of the suite, in its order (a row's reasons follow this order)."""
    oldest, newest = timestamp_bounds(limits, now)
    hours = f"{limits.future_tolerance_hours:g}"
    between = "expect_column_values_to_be_between"
    checks = id_checks("user_id", limits.max_id_length)
    checks += id_checks("item_id", limits.max_id_length)
    checks += [
        RowCheck(
            "timestamp is null",
            "null",
            "timestamp",
            "expect_column_values_to_not_be_null",
            "timestamp",
            "timestamp is null or unparseable",
        ),
        RowCheck(
            "timestamp too old",
            "before",
            "timestamp",
            between,
            "timestamp",
            f"timestamp before {oldest.isoformat()}",
            {"min_value": oldest.isoformat()},
        ),
        RowCheck(
            "timestamp in the future",
            "after",
            "timestamp",
            between,
            "timestamp",
            f"timestamp more than {hours}h in the future",
            {"max_value": newest.isoformat()},
        ),
    ]
    if has_value:
        checks += [
            RowCheck(
                "value is null",
                "null",
                "value",
                "expect_column_values_to_not_be_null",
                "value",
                "value is null or NaN",
            ),
            RowCheck(
                "value is not finite",
                "not_finite",
                "value",
                between,
                "value",
                "value is not finite",
                {"min_value": -_FLOAT_MAX, "max_value": _FLOAT_MAX},
            ),
            RowCheck(
                "value out of range",
                "outside",
                "value",
                between,
                "value",
                f"value outside [{limits.value_min:g}, {limits.value_max:g}]",
                {"min_value": limits.value_min, "max_value": limits.value_max},
            ),
        ]
    if limits.max_events_per_user is not None:
        checks.append(
            RowCheck(
                "user has too many events",
                "max_events",
                "user_id",
                between,
                USER_EVENTS,
                f"user has more than {limits.max_events_per_user} events in this batch "
                "(likely a bot; validate.max_events_per_user)",
                {"max_value": limits.max_events_per_user},
            )
        )
    if has_catalog:
        checks.append(
            RowCheck(
                "item not in the catalog",
                "not_in_catalog",
                "item_id",
                "expect_column_values_to_be_in_set",
                IN_CATALOG,
                "item_id not in the item catalog",
                {"value_set": [1]},
            )
        )
    if has_issue:
        checks.append(
            RowCheck(
                "flagged at ingest",
                "not_null",
                ISSUE_COLUMN,
                "expect_column_values_to_be_null",
                ISSUE_COLUMN,
                INGEST_REASON,
            )
        )
    return checks


def build_interactions_suite(
    limits: Thresholds,
    now: pd.Timestamp,
    checks: list[RowCheck],
    *,
    dedup_key: list[str] | None = None,
    volume_floor: int | None = None,
    batch_checks: bool = True,
) -> ExpectationSuite:
    """Build the "interactions" suite: the batch checks, one expectation per row check
    (:func:`interaction_checks`) on its flag column, and the duplicate-key check.

    ``volume_floor``: the least row count the volume check accepts (None: no check yet).
    ``batch_checks=False`` leaves out the checks of the whole batch (row count, volume,
    staleness): for one user partition of a batch, whose batch is checked by
    :func:`build_partitioned_batch_suite`.
    """
    import great_expectations as gx
    import great_expectations.expectations as gxe

    expectations: list[Expectation] = []
    if batch_checks:
        expectations = _batch_expectations(
            limits, now, volume_floor, gxe.ExpectTableRowCountToBeBetween, TIMESTAMP_VALID
        )
    key = dedup_key or list(REQUIRED_COLUMNS)
    expectations.append(
        gxe.ExpectColumnValuesToBeNull(
            column=DUPLICATE_KEY,
            meta={
                **duplicates(key),
                "source": {
                    "expectation": "expect_compound_columns_to_be_unique",
                    "column": None,
                    "column_list": key,
                },
            },
            description=(
                f"Each ({', '.join(key)}) key appears once; a repeated key's first good row is "
                "kept, the others are dropped as duplicates. Shown: the repeated keys."
            ),
        )
    )
    for c in checks:
        expectations.append(
            gxe.ExpectColumnValuesToBeNull(
                column=c.check,
                meta={**row(c.reason), "source": c.source()},
                description=_describe(c),
            )
        )
    return gx.ExpectationSuite(name=SUITE_NAME, expectations=expectations)


def _describe(c: RowCheck) -> str:
    """The Data Docs line of a row check (GX templates: ``$`` would start a parameter)."""
    rule = ", ".join(f"{k}={v}" for k, v in c.rule.items() if k != "regex")
    rule = f"{c.expectation}({c.column}{', ' + rule if rule else ''})"
    text = f"No row fails {rule}; a failing row is quarantined: '{c.reason}'. Shown: its values."
    return text.replace("$", "$$")


def build_partitioned_batch_suite(
    limits: Thresholds, now: pd.Timestamp, volume_floor: int | None
) -> ExpectationSuite:
    """The whole-batch checks of a batch validated in user partitions.

    The frame holds one row per partition: ``rows`` (its row count) and ``newest_valid``
    (its newest event inside the accepted time range, null when it has none). The
    batch's row count is the sum of ``rows``, its newest acceptable event the maximum of
    ``newest_valid``: the same checks as the whole-batch suite's, on the same figures.
    """
    import great_expectations as gx
    import great_expectations.expectations as gxe

    row_count = functools.partial(gxe.ExpectColumnSumToBeBetween, column=PARTITION_ROWS)
    expectations = _batch_expectations(limits, now, volume_floor, row_count, PARTITION_NEWEST)
    return gx.ExpectationSuite(name=BATCH_SUITE_NAME, expectations=expectations)


def _batch_expectations(
    limits: Thresholds,
    now: pd.Timestamp,
    volume_floor: int | None,
    row_count: Callable[..., Expectation],
    newest_column: str,
) -> list[Expectation]:
    """The checks of a whole batch: its row count (``row_count(min_value=, meta=)``) against
    ``min_rows`` and the volume floor, and its newest valid event (``newest_column``)
    against the stale limit."""
    import great_expectations.expectations as gxe

    floors = [(limits.min_rows, "min_rows")]
    if volume_floor is not None:
        floors.append((volume_floor, "volume"))
    expectations = [row_count(min_value=floor, meta=batch(name)) for floor, name in floors]
    if limits.max_event_age_days is not None:
        expectations.append(
            # GX validates min_value with pydantic, which parses this ISO text to a datetime
            gxe.ExpectColumnMaxToBeBetween(
                column=newest_column,
                min_value=_freshest(limits, now),  # type: ignore[arg-type]  # GX parses it
                meta=batch("stale"),
            )
        )
    return expectations


def _freshest(limits: Thresholds, now: pd.Timestamp) -> str:
    """The newest acceptable event must be at least this recent (stale-data check)."""
    return (_as_utc(now) - pd.Timedelta(days=limits.max_event_age_days)).isoformat()


def _as_utc(ts: pd.Timestamp) -> pd.Timestamp:
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def check_dtypes(schema: pa.Schema) -> None:
    """Raise ColumnTypeError when ``timestamp`` is not a time-zone-aware timestamp or ``value``
    (when there) is not numeric."""
    timestamp = schema.field("timestamp").type
    if not (pa.types.is_timestamp(timestamp) and timestamp.tz is not None):
        raise ColumnTypeError(
            f"interactions: column 'timestamp' must be a timezone-aware UTC datetime; got dtype "
            f"{_dtype(timestamp)}; parse it in ingest with pd.to_datetime(..., utc=True, "
            "errors='coerce')"
        )
    if "value" in schema.names:
        value = schema.field("value").type
        if not (pa.types.is_integer(value) or pa.types.is_floating(value)):
            raise ColumnTypeError(
                f"interactions: column 'value' must be numeric; got dtype {_dtype(value)}; "
                "convert it in ingest with pd.to_numeric(..., errors='coerce') or drop the column"
            )


def _dtype(kind: pa.DataType) -> str:
    try:
        return str(kind.to_pandas_dtype())
    except NotImplementedError:
        return str(kind)


def suite_frame(
    columns: Columns,
    checks: list[RowCheck],
    masks: dict[str, np.ndarray],
    repeated: np.ndarray,
    key: list[str],
    timestamp_valid: bool,
) -> pd.DataFrame:
    """The batch GX validates: one column per row check (the failing rows' values as text,
    null elsewhere), ``duplicate key`` (the repeated keys) and, for the stale-data check,
    ``__timestamp_valid__``."""
    table = columns.table
    frame = {c.check: flag_column(c, columns, masks[c.check]) for c in checks}
    rows = pa.array(np.flatnonzero(repeated))
    parts = [pc.fill_null(pc.take(table.column(k), rows).cast(pa.string()), NULL_TEXT) for k in key]
    frame[DUPLICATE_KEY] = failing_values(repeated, pc.binary_join_element_wise(*parts, " | "))
    if timestamp_valid:
        outside = masks["timestamp too old"] | masks["timestamp in the future"]
        ts = table.column("timestamp")
        valid = pc.if_else(pa.array(outside), pa.scalar(None, ts.type), ts)
        frame[TIMESTAMP_VALID] = valid.to_pandas()
    return pd.DataFrame(frame)
