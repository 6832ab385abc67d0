"""The Great Expectations suite for the interactions table, as Python code.

Row-level expectations (``meta["level"] == "row"``) quarantine the rows they flag with
``meta["reason"]``; batch-level ones reject the whole batch; see ``expectations/common.py``
for all levels. Validation adds helper columns to the frame it hands to GX:

* ``__user_events__``: the user's number of events in the batch (bot check);
* ``__in_catalog__``: 1 when the item is in the item catalog, 0 when not, null for a
  null id (only when a catalog is given);
* ``__timestamp_valid__``: the timestamp where it is inside the accepted range, else null
  (the stale-data check looks at the newest *acceptable* event, not a future outlier).

``great_expectations`` is imported inside the builder (it takes ~6 s), so importing this
module stays cheap.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from expectations.common import ROW_COLUMN, batch, duplicates, id_expectations, row
from tasks.errors import ConfigError, DataError

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuite

    from tasks.config import ValidateConfig

SUITE_NAME = "interactions"
BATCH_SUITE_NAME = "interactions_batch"  # the whole-batch checks of a partitioned batch
PARTITION_ROWS = "rows"
PARTITION_NEWEST = "newest_valid"
REQUIRED_COLUMNS = ("user_id", "item_id", "timestamp")
ISSUE_COLUMN = "ingest_issue"
USER_EVENTS = "__user_events__"
IN_CATALOG = "__in_catalog__"
TIMESTAMP_VALID = "__timestamp_valid__"
INGEST_REASON = "flagged at ingest"
# A between-check on +/- the largest float is how GX says "finite" (inf falls outside it).
_FLOAT_MAX = sys.float_info.max


def timestamp_bounds(
    config: ValidateConfig, now: pd.Timestamp
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Oldest and newest accepted event time, both in UTC."""
    try:
        oldest = _as_utc(pd.Timestamp(config.min_timestamp))
        if pd.isna(oldest):
            raise ValueError("empty or NaT")
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"validate.min_timestamp {config.min_timestamp!r} is not a timestamp ({exc}); "
            "expected ISO 8601 such as '1995-01-01T00:00:00Z'; fix the config"
        ) from exc
    newest = _as_utc(now) + pd.Timedelta(hours=config.future_tolerance_hours)
    return oldest, newest


def build_interactions_suite(
    config: ValidateConfig,
    now: pd.Timestamp,
    *,
    has_value: bool = True,
    has_issue: bool = False,
    has_catalog: bool = False,
    dedup_key: list[str] | None = None,
    volume_floor: int | None = None,
    batch_checks: bool = True,
) -> ExpectationSuite:
    """Build the "interactions" suite for a frame with the given optional columns.

    ``volume_floor``: the least row count the volume check accepts (None: no check yet).
    ``batch_checks=False`` leaves out the checks of the whole batch (row count, volume,
    staleness): for one user partition of a batch, whose batch is checked by
    :func:`build_partitioned_batch_suite`.
    """
    import great_expectations as gx
    import great_expectations.expectations as gxe

    oldest, newest = timestamp_bounds(config, now)
    hours = f"{config.future_tolerance_hours:g}"

    expectations = []
    if batch_checks:
        expectations.append(
            gxe.ExpectTableRowCountToBeBetween(min_value=config.min_rows, meta=batch("min_rows"))
        )
        if volume_floor is not None:
            expectations.append(
                gxe.ExpectTableRowCountToBeBetween(min_value=volume_floor, meta=batch("volume"))
            )
        if config.max_event_age_days is not None:
            expectations.append(
                gxe.ExpectColumnMaxToBeBetween(
                    column=TIMESTAMP_VALID, min_value=_freshest(config, now), meta=batch("stale")
                )
            )
    expectations += id_expectations("user_id", config) + id_expectations("item_id", config)
    expectations += [
        gxe.ExpectColumnValuesToNotBeNull(
            column="timestamp", meta=row("timestamp is null or unparseable")
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="timestamp",
            min_value=oldest.isoformat(),
            meta=row(f"timestamp before {oldest.isoformat()}"),
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="timestamp",
            max_value=newest.isoformat(),
            meta=row(f"timestamp more than {hours}h in the future"),
        ),
    ]
    if has_value:
        expectations += [
            gxe.ExpectColumnValuesToNotBeNull(column="value", meta=row("value is null or NaN")),
            gxe.ExpectColumnValuesToBeBetween(
                column="value",
                min_value=-_FLOAT_MAX,
                max_value=_FLOAT_MAX,
                meta=row("value is not finite"),
            ),
            gxe.ExpectColumnValuesToBeBetween(
                column="value",
                min_value=config.value_min,
                max_value=config.value_max,
                meta=row(f"value outside [{config.value_min:g}, {config.value_max:g}]"),
            ),
        ]
    if config.max_events_per_user is not None:
        expectations.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=USER_EVENTS,
                max_value=config.max_events_per_user,
                meta=row(
                    f"user has more than {config.max_events_per_user} events in this batch "
                    "(likely a bot; validate.max_events_per_user)"
                ),
            )
        )
    if has_catalog:
        expectations.append(
            gxe.ExpectColumnValuesToBeInSet(
                column=IN_CATALOG, value_set=[1], meta=row("item_id not in the item catalog")
            )
        )
    if has_issue:
        expectations.append(
            gxe.ExpectColumnValuesToBeNull(column=ISSUE_COLUMN, meta=row(INGEST_REASON))
        )
    key = dedup_key or list(REQUIRED_COLUMNS)
    expectations.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=key, meta=duplicates(key)))
    return gx.ExpectationSuite(name=SUITE_NAME, expectations=expectations)


def build_partitioned_batch_suite(
    config: ValidateConfig, now: pd.Timestamp, volume_floor: int | None
) -> ExpectationSuite:
    """The whole-batch checks of a batch validated in user partitions.

    The frame holds one row per partition: ``rows`` (its row count) and ``newest_valid``
    (its newest event inside the accepted time range, null when it has none). The
    batch's row count is the sum of ``rows``, its newest acceptable event the maximum of
    ``newest_valid``: the same checks as the whole-batch suite's, on the same figures.
    """
    import great_expectations as gx
    import great_expectations.expectations as gxe

    expectations = [
        gxe.ExpectColumnSumToBeBetween(
            column=PARTITION_ROWS, min_value=config.min_rows, meta=batch("min_rows")
        )
    ]
    if volume_floor is not None:
        expectations.append(
            gxe.ExpectColumnSumToBeBetween(
                column=PARTITION_ROWS, min_value=volume_floor, meta=batch("volume")
            )
        )
    if config.max_event_age_days is not None:
        expectations.append(
            gxe.ExpectColumnMaxToBeBetween(
                column=PARTITION_NEWEST, min_value=_freshest(config, now), meta=batch("stale")
            )
        )
    return gx.ExpectationSuite(name=BATCH_SUITE_NAME, expectations=expectations)


def _freshest(config: ValidateConfig, now: pd.Timestamp) -> str:
    """The newest acceptable event must be at least this recent (stale-data check)."""
    return (_as_utc(now) - pd.Timedelta(days=config.max_event_age_days)).isoformat()


def _as_utc(ts: pd.Timestamp) -> pd.Timestamp:
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def frame_for_suite(
    df: pd.DataFrame,
    has_value: bool,
    config: ValidateConfig,
    now: pd.Timestamp,
    items: pd.DataFrame | None,
) -> pd.DataFrame:
    """The checked columns, helper columns and a row number, so GX's indices map to rows."""
    timestamp = df["timestamp"].dtype
    if not isinstance(timestamp, pd.DatetimeTZDtype):
        raise DataError(
            f"interactions: column 'timestamp' must be a timezone-aware UTC datetime; got dtype "
            f"{timestamp}; parse it in ingest with pd.to_datetime(..., utc=True, errors='coerce')"
        )
    columns = [*REQUIRED_COLUMNS, *(["value"] if has_value else [])]
    columns += [c for c in ("event_type", ISSUE_COLUMN) if c in df.columns]
    frame = df[columns].copy()
    if has_value:
        value = df["value"].dtype
        if not pd.api.types.is_numeric_dtype(value) or pd.api.types.is_bool_dtype(value):
            raise DataError(
                f"interactions: column 'value' must be numeric; got dtype {value}; convert it "
                "in ingest with pd.to_numeric(..., errors='coerce') or drop the column"
            )
        frame["value"] = frame["value"].astype("float64")  # nullable/int -> float64, NA -> NaN
    users = df["user_id"].astype(object).fillna("\x00null")
    frame[USER_EVENTS] = users.map(users.value_counts()).to_numpy(dtype=np.int64)
    oldest, newest = timestamp_bounds(config, now)
    ts = df["timestamp"]
    frame[TIMESTAMP_VALID] = ts.where((ts >= oldest) & (ts <= newest))
    if items is not None:
        known = pd.Index(items["item_id"].dropna().astype(str).unique())
        in_catalog = df["item_id"].isin(known).astype("float64")
        present = df["item_id"].notna() & (df["item_id"].astype("str").str.strip() != "")
        frame[IN_CATALOG] = in_catalog.where(present).to_numpy()  # null/blank: reported above
    frame[ROW_COLUMN] = np.arange(len(frame), dtype=np.int64)
    return frame
