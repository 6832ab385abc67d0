"""The suites take plain thresholds and raise their own errors: no pipeline config needed."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pyarrow as pa
import pytest

from expectations.errors import ColumnTypeError, ExpectationsError, ThresholdError
from expectations.interactions import check_dtypes, interaction_checks, timestamp_bounds
from expectations.thresholds import Thresholds

NOW = pd.Timestamp("2024-06-01T00:00:00Z")
LIMITS = Thresholds(
    value_min=1.0,
    value_max=10.0,
    min_timestamp="2000-01-01T00:00:00Z",
    future_tolerance_hours=6.0,
    min_rows=1,
    max_quarantine_share=0.5,
    max_id_length=8,
    max_events_per_user=None,
    max_event_age_days=None,
    max_volume_drop=None,
    item_year_min=1900,
)


def test_the_row_checks_read_the_thresholds_given() -> None:
    oldest, newest = timestamp_bounds(LIMITS, NOW)
    assert (oldest, newest) == (pd.Timestamp("2000-01-01", tz="UTC"), NOW + pd.Timedelta(hours=6))
    reasons = [c.reason for c in interaction_checks(LIMITS, NOW)]
    assert "user_id longer than 8 characters" in reasons
    assert "value outside [1, 10]" in reasons
    assert not any("too many events" in r for r in reasons)  # max_events_per_user None: off


def test_a_timestamp_threshold_that_is_no_timestamp_raises_threshold_error() -> None:
    limits = dataclasses.replace(LIMITS, min_timestamp="last tuesday")
    with pytest.raises(ThresholdError, match=r"validate.min_timestamp 'last tuesday' is not a ti"):
        timestamp_bounds(limits, NOW)


def test_an_unusable_column_dtype_raises_column_type_error() -> None:
    schema = pa.schema([("user_id", pa.string()), ("timestamp", pa.timestamp("us"))])
    with pytest.raises(ColumnTypeError, match="'timestamp' must be a timezone-aware") as caught:
        check_dtypes(schema)
    assert isinstance(caught.value, ExpectationsError)
