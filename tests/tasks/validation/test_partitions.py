"""A batch validated in user partitions gives the same tables as validated whole."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.config import ValidateConfig
from tasks.errors import DataValidationError
from tasks.validate import validate
from tasks.validation.partitions import validate_in_partitions

NOW = pd.Timestamp("2024-06-01T00:00:00Z")
KEY = ["user_id", "item_id", "timestamp"]


def events(rows: list[tuple]) -> pd.DataFrame:
    users, items, times, values = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "user_id": pd.array(users, dtype="str"),
            "item_id": pd.array(items, dtype="str"),
            "timestamp": pd.to_datetime(list(times), utc=True, format="ISO8601"),
            "value": np.array(values, dtype="float64"),
        }
    )


def batch() -> pd.DataFrame:
    rows = []
    for u in range(12):  # 12 ordinary users, 3 events each
        rows += [(f"u{u}", f"i{(u + j) % 7}", f"2024-05-{10 + j:02d}", 1.0 + j) for j in range(3)]
    rows += [
        ("u1", "i1", "2024-05-10", 4.5),  # a duplicate key of u1's first event: dropped
        ("u2", "i2", "2024-05-10", 1.0),  # an exact copy: dropped
        (None, "i1", "2024-05-11", 1.0),  # quarantined: no user
        ("u3", " ", "2024-05-11", 1.0),  # quarantined: blank item
        ("u4", "i5", "2024-05-12", 7.5),  # quarantined: value out of range
        ("u5", "i6", "2024-07-01", 1.0),  # quarantined: in the future
        ("u6", "i404", "2024-05-12", 1.0),  # quarantined: not in the catalog
    ]
    rows += [("bot", f"i{j}", f"2024-05-{10 + j:02d}", 1.0) for j in range(6)]  # > 5 events
    return events(rows)


def catalog() -> pd.DataFrame:
    return pd.DataFrame({"item_id": pd.array([f"i{j}" for j in range(7)], dtype="str")})


def run(tmp_path, name: str, part_rows: int, config: ValidateConfig | None = None) -> dict:
    raw, items = tmp_path / "raw.parquet", tmp_path / "items.parquet"
    batch().to_parquet(raw, index=False)
    catalog().to_parquet(items, index=False)
    config = config or ValidateConfig(max_events_per_user=5, max_quarantine_share=0.5)
    return validate(
        str(raw),
        str(tmp_path / name / "run_date=2024-06-01"),
        str(tmp_path / name / "gx"),
        config.model_copy(update={"part_rows": part_rows}),
        NOW.isoformat(),
        items_path=str(items),
    ).summary()


def rows_of(path: str, columns: list[str]) -> pd.DataFrame:
    table = pd.read_parquet(path)[columns]
    return table.sort_values(columns, na_position="first").reset_index(drop=True)


def test_partitions_give_the_whole_batch_answer(tmp_path):
    whole = run(tmp_path, "whole", part_rows=1_000)
    parts = run(tmp_path, "parts", part_rows=8)

    assert parts["volume"]["partitions"] >= 3 and "partitions" not in whole["volume"]
    counts = ["rows_read", "rows_accepted", "rows_quarantined", "duplicates_dropped"]
    assert [parts[c] for c in counts] == [whole[c] for c in counts] == [49, 36, 11, 2]
    assert parts["accounting"] == whole["accounting"]
    accepted = [*KEY, "value"]
    pd.testing.assert_frame_equal(
        rows_of(parts["accepted_path"], accepted), rows_of(whole["accepted_path"], accepted)
    )
    assert rows_of(parts["accepted_path"], KEY).query("user_id == 'u1'")["timestamp"].is_unique
    assert 4.5 not in set(pd.read_parquet(parts["accepted_path"])["value"])  # first copy kept
    quarantined = [*KEY, "value", "reason"]
    pd.testing.assert_frame_equal(
        rows_of(parts["quarantine_path"], quarantined),
        rows_of(whole["quarantine_path"], quarantined),
    )

    def row_checks(s):
        return sorted(
            (e["expectation"], e["column"] or "", e["success"], e["unexpected_count"])
            for e in s["expectations"]
            if e["level"] != "batch"
        )

    assert row_checks(parts) == row_checks(whole)
    assert not list(tmp_path.glob("parts/.*validating"))  # the partitions are removed


@pytest.mark.parametrize(
    ("update", "previous", "expected"),
    [
        ({"max_event_age_days": 7}, (), "expect_column_max_to_be_between (stale data) failed"),
        ({"min_rows": 100}, (), "expect_column_sum_to_be_between (min_rows) failed: observed 49"),
        ({}, (200, 220, 240), "(volume) failed: observed 49 rows, more than 50% below"),
    ],
)
def test_a_bad_batch_fails_before_its_partitions_are_validated(
    tmp_path, update, previous, expected
):
    raw = tmp_path / "raw.parquet"
    batch().to_parquet(raw, index=False)
    config = ValidateConfig(part_rows=8, max_quarantine_share=1.0, **update)
    with pytest.raises(DataValidationError) as err:
        validate_in_partitions(
            raw,
            tmp_path / "work",
            gx_root=tmp_path / "gx",
            config=config,
            now=NOW,
            previous_volumes=previous,
        )
    assert expected in str(err.value)
    assert not (tmp_path / "work" / "validated").exists()
    if "stale" in expected:  # the newest acceptable event, the future outlier shown
        assert "newest acceptable event is 2024-05-15T00:00:00+00:00" in str(err.value)
        assert "newest rows: user_id=u5, item_id=i6" in str(err.value)


def test_quarantine_share_is_checked_on_the_whole_batch(tmp_path):
    config = ValidateConfig(max_events_per_user=5, max_quarantine_share=0.25)
    assert run(tmp_path, "share-ok", part_rows=8, config=config)["rows_quarantined"] == 11
    config = ValidateConfig(max_events_per_user=5, max_quarantine_share=0.1)
    with pytest.raises(DataValidationError) as err:
        run(tmp_path, "share", part_rows=8, config=config)
    message = str(err.value)
    assert "quarantine share 22.45% (11 of 49 rows)" in message
    assert "sample rows: partition " in message
    assert not (tmp_path / "share" / "run_date=2024-06-01").exists()
