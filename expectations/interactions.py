"""The Great Expectations suite for the interactions table, as Python code.

Row-level expectations carry ``meta={"level": "row", "reason": ...}``: a row they flag is
quarantined with that reason. Table-level ones carry ``meta={"level": "batch"}``: when
they fail, the whole batch is rejected. ``great_expectations`` is imported inside the
builder (it takes ~6 s), so importing this module stays cheap.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import pandas as pd

from tasks.errors import ConfigError

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuite

    from tasks.config import ValidateConfig

SUITE_NAME = "interactions"
REQUIRED_COLUMNS = ("user_id", "item_id", "timestamp")
BLANK_REGEX = r"^\s*$"
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
    config: ValidateConfig, now: pd.Timestamp, *, has_value: bool = True
) -> ExpectationSuite:
    """Build the "interactions" suite; ``has_value=False`` leaves out the optional value checks."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    oldest, newest = timestamp_bounds(config, now)
    hours = f"{config.future_tolerance_hours:g}"

    def row(reason: str) -> dict:
        return {"level": "row", "reason": reason}

    expectations = [
        gxe.ExpectTableRowCountToBeBetween(min_value=config.min_rows, meta={"level": "batch"}),
    ]
    for column in ("user_id", "item_id"):
        reason = f"{column} is null or blank"
        expectations += [
            gxe.ExpectColumnValuesToNotBeNull(column=column, meta=row(reason)),
            gxe.ExpectColumnValuesToNotMatchRegex(
                column=column, regex=BLANK_REGEX, meta=row(reason)
            ),
        ]
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
    return gx.ExpectationSuite(name=SUITE_NAME, expectations=expectations)


def _as_utc(ts: pd.Timestamp) -> pd.Timestamp:
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
