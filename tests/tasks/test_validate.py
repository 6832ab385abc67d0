"""validate_interactions on tiny frames whose right answers are known."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tasks.config import ValidateConfig
from tasks.errors import DataError, DataValidationError
from tasks.validate import validate
from tasks.validation.checks import validate_interactions

NOW = pd.Timestamp("2024-06-01T00:00:00Z")
LENIENT = ValidateConfig(max_quarantine_share=1.0)


def frame(rows: list[tuple], *, with_value: bool = True) -> pd.DataFrame:
    users, items, times, values = zip(*rows, strict=True)
    data = {
        "user_id": pd.array(users, dtype="str"),
        "item_id": pd.array(items, dtype="str"),
        "timestamp": pd.to_datetime(list(times), utc=True, format="ISO8601"),
    }
    if with_value:
        data["value"] = np.array(values, dtype="float64")
    return pd.DataFrame(data)


def clean_rows() -> list[tuple]:
    return [
        ("u1", "i1", "2024-05-01", 1.0),
        ("u1", "i2", "2024-05-02", 5.0),
        ("u2", "i1", "2024-05-03", 0.0),
        ("u3", "i3", "2024-05-31 23:00", 2.5),
    ]


def check_accounting(result) -> None:
    assert result.rows_read == (
        result.rows_accepted + result.rows_quarantined + result.duplicates_dropped
    )
    assert result.rows_accepted == len(result.accepted)
    assert result.rows_quarantined == len(result.quarantined)


def test_clean_frame_is_all_accepted_and_docs_are_built(tmp_path):
    df = frame(clean_rows()).assign(extra=["a", "b", "c", "d"])
    result = validate_interactions(
        df, gx_root=tmp_path / "validation", config=ValidateConfig(), now=NOW
    )

    assert (result.rows_read, result.rows_accepted, result.rows_quarantined) == (4, 4, 0)
    assert result.duplicates_dropped == 0
    pd.testing.assert_frame_equal(result.accepted, df)  # extra column kept, no row column
    assert list(result.quarantined.columns) == [*df.columns, "reason"]
    assert result.data_docs_index is not None and result.data_docs_index.name == "index.html"
    assert result.data_docs_index.is_file()
    assert result.data_docs_index.is_relative_to(tmp_path / "validation")
    assert all(e["success"] for e in result.expectations)
    assert {e["column"] for e in result.expectations} == {
        None,
        "user_id",
        "item_id",
        "timestamp",
        "value",
        "__user_events__",  # the bot check: events per user in the batch
    }
    check_accounting(result)


def test_bad_rows_are_quarantined_with_their_reason(tmp_path):
    df = frame(
        [
            ("u1", "i1", "2024-05-01", 1.0),  # good
            (None, "i1", "2024-05-01", 1.0),
            ("u2", "  ", "2024-05-01", 1.0),
            ("u3", "i3", None, 1.0),  # NaT: unparseable in the source
            ("u4", "i4", "2024-06-03", 1.0),  # beyond now + 24 h
            ("u5", "i5", "1990-01-01", 1.0),
            ("u6", "i6", "2024-05-01", np.nan),
            ("u7", "i7", "2024-05-01", np.inf),
            ("u8", "i8", "2024-05-01", 7.5),
            ("", "i9", "2024-05-31 12:00", 1.0),
        ]
    )
    result = validate_interactions(df, gx_root=tmp_path, config=LENIENT, now=NOW)

    assert result.rows_accepted == 1 and result.accepted["user_id"].tolist() == ["u1"]
    reasons = dict(zip(result.quarantined["item_id"], result.quarantined["reason"], strict=True))
    assert reasons == {
        "i1": "user_id is null or blank",
        "  ": "item_id is null or blank",
        "i3": "timestamp is null or unparseable",
        "i4": "timestamp more than 24h in the future",
        "i5": "timestamp before 1995-01-01T00:00:00+00:00",
        "i6": "value is null or NaN",
        "i7": "value is not finite; value outside [0, 5]",
        "i8": "value outside [0, 5]",
        "i9": "user_id is null or blank",
    }
    assert "__row__" not in result.quarantined.columns
    check_accounting(result)
    failed = {(e["expectation"], e["column"]): e["unexpected_count"] for e in result.expectations}
    assert failed[("expect_column_values_to_not_be_null", "user_id")] == 1
    assert failed[("expect_column_values_to_not_match_regex", "user_id")] == 1


def test_row_failing_several_expectations_gets_joined_reasons(tmp_path):
    df = frame([("u1", "i1", "2024-05-01", 1.0), (None, "", None, -1.0)])
    result = validate_interactions(df, gx_root=tmp_path, config=LENIENT, now=NOW)

    assert result.quarantined["reason"].tolist() == [
        (
            "user_id is null or blank; item_id is null or blank; "
            "timestamp is null or unparseable; value outside [0, 5]"
        )
    ]


def test_duplicates_are_dropped_after_quarantine_and_counted(tmp_path):
    rows = [*clean_rows(), clean_rows()[0], clean_rows()[0], clean_rows()[1]]
    df = frame(rows).assign(event_type=["view"] * 6 + ["click"])
    result = validate_interactions(df, gx_root=tmp_path, config=LENIENT, now=NOW)

    # Rows 4 and 5 repeat row 0; row 6 has the same key as row 1 but another event type.
    assert result.duplicates_dropped == 2
    assert result.rows_accepted == 5
    assert result.rows_quarantined == 0
    check_accounting(result)


def test_missing_required_column_fails_the_batch_before_gx(tmp_path):
    df = frame(clean_rows()).rename(columns={"user_id": "uid"})
    with pytest.raises(DataValidationError) as err:
        validate_interactions(df, gx_root=tmp_path / "gx", config=ValidateConfig(), now=NOW)
    message = str(err.value)
    assert "'user_id'" in message
    assert "found ['uid', 'item_id', 'timestamp', 'value']" in message
    assert not (tmp_path / "gx").exists()


def test_empty_frame_fails_the_batch(tmp_path):
    df = frame(clean_rows()).iloc[:0]
    with pytest.raises(DataValidationError, match="empty"):
        validate_interactions(df, gx_root=tmp_path, config=ValidateConfig(), now=NOW)


def test_too_few_rows_fails_the_batch(tmp_path):
    with pytest.raises(DataValidationError, match=r"observed 4 rows, at least 10 required"):
        validate_interactions(
            frame(clean_rows()), gx_root=tmp_path, config=ValidateConfig(min_rows=10), now=NOW
        )


def test_quarantine_share_above_threshold_fails_the_batch(tmp_path):
    df = frame([*clean_rows(), (None, "i9", "2024-05-01", 1.0)])
    config = ValidateConfig(max_quarantine_share=0.1)
    with pytest.raises(DataValidationError) as err:
        validate_interactions(df, gx_root=tmp_path, config=config, now=NOW)
    message = str(err.value)
    assert "quarantine share 20.00%" in message
    assert "threshold 10.00%" in message
    assert "row 4:" in message and "user_id is null or blank" in message


def test_input_frame_is_not_mutated(tmp_path):
    df = frame([*clean_rows(), (None, "i9", "2024-05-01", np.inf), clean_rows()[0]])
    before = df.copy()
    validate_interactions(df, gx_root=tmp_path, config=LENIENT, now=NOW)
    pd.testing.assert_frame_equal(df, before)


def test_value_column_is_optional(tmp_path):
    df = frame(clean_rows(), with_value=False)
    result = validate_interactions(df, gx_root=tmp_path, config=ValidateConfig(), now=NOW)
    assert result.rows_accepted == 4
    assert "value" not in {e["column"] for e in result.expectations}


def test_naive_timestamps_are_unusable_input(tmp_path):
    df = frame(clean_rows())
    df["timestamp"] = df["timestamp"].dt.tz_localize(None)
    with pytest.raises(DataError, match="timezone-aware"):
        validate_interactions(df, gx_root=tmp_path, config=ValidateConfig(), now=NOW)


def test_validating_twice_on_the_same_gx_root_works(tmp_path):
    df = frame([*clean_rows(), (None, "i9", "2024-05-01", 1.0)])
    first = validate_interactions(df, gx_root=tmp_path, config=LENIENT, now=NOW)
    later = NOW + pd.Timedelta(days=1)
    second = validate_interactions(df, gx_root=tmp_path, config=LENIENT, now=later)
    assert (first.rows_accepted, second.rows_accepted) == (4, 4)
    assert second.data_docs_index == first.data_docs_index
    assert len(list((tmp_path / "gx" / "uncommitted" / "validations").rglob("*.json"))) == 2


def test_task_writes_accepted_and_quarantined_parquet(tmp_path):
    raw = tmp_path / "raw.parquet"
    frame([*clean_rows(), (None, "i9", "2024-05-01", 1.0)]).to_parquet(raw)
    summary = validate(
        str(raw), str(tmp_path / "validated"), str(tmp_path / "gx"), LENIENT, NOW.isoformat()
    )
    assert (summary.rows_accepted, summary.rows_quarantined) == (4, 1)
    assert len(pd.read_parquet(summary.accepted_path)) == 4
    quarantine = pd.read_parquet(summary.quarantine_path)
    assert quarantine["reason"].tolist() == ["user_id is null or blank"]
    assert summary.accepted_path.endswith("validated/interactions.parquet")
    assert summary.data_docs_index.endswith("index.html")


def test_importing_the_modules_does_not_import_great_expectations():
    code = (
        "import sys, expectations.interactions, tasks.validate; "
        "sys.exit('great_expectations' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- items, users, catalog, bots, volume, staleness, artifact, accumulation ---------------


@pytest.fixture(scope="module")
def gx_root(tmp_path_factory):
    """One GX project for the tests below: a context per call costs less once it exists."""
    return tmp_path_factory.mktemp("gx")


def catalog(ids: list, **extra) -> pd.DataFrame:
    return pd.DataFrame({"item_id": pd.array(ids, dtype="str"), **extra})


def test_items_users_and_unknown_items(gx_root):
    df = frame([*clean_rows(), ("u4", "i404", "2024-05-01", 1.0)])
    items = catalog(
        ["i1", "i2", "i3", "i3", " ", None],
        title=pd.array(["a", "b", None, "c", "d", "e"], dtype="str"),
        year=pd.array([1999, 2001, None, 1800, 2000, 2000], dtype="Int64"),
        metadata_missing=[False, False, True, False, False, False],
    )
    users = pd.DataFrame(
        {"user_id": pd.array(["u1", "u2", "u2", "u3"], dtype="str"), "age": [30, 200, 40, None]}
    )
    result = validate_interactions(
        df, gx_root=gx_root, config=LENIENT, now=NOW, items=items, users=users
    )
    assert result.quarantined["reason"].tolist() == ["item_id not in the item catalog"]
    assert result.rows_accepted == 4
    assert result.items is not None and result.users is not None
    assert result.items.accepted["item_id"].tolist() == ["i1", "i2", "i3"]
    assert result.items.rows_quarantined == 2 and result.items.duplicates_dropped == 1
    assert result.items.flagged == {
        "item metadata missing (no title or release year)": 1,
        "item year outside [1870, 2029]": 1,  # flagged, kept: its interactions stay valid
    }
    assert result.users.duplicates_dropped == 1 and result.users.rows_accepted == 3
    assert result.users.flagged == {"user age outside [1, 120]": 1}
    assert result.accounting == (
        "interactions: 5 rows read = 4 accepted + 1 quarantined + 0 duplicates dropped | "
        "items: 6 rows read = 3 accepted + 2 quarantined + 1 duplicates dropped; flagged, kept: "
        "1 item metadata missing (no title or release year); flagged, kept: 1 item year outside "
        "[1870, 2029] | users: 4 rows read = 3 accepted + 0 quarantined + 1 duplicates dropped; "
        "flagged, kept: 1 user age outside [1, 120]"
    )


def test_a_bot_user_is_quarantined_whole(gx_root):
    rows = [*clean_rows()] + [("bot", f"i{n}", "2024-05-05", 1.0) for n in range(6)]
    config = ValidateConfig(max_events_per_user=5, max_quarantine_share=1.0)
    result = validate_interactions(frame(rows), gx_root=gx_root, config=config, now=NOW)
    assert result.rows_quarantined == 6
    assert set(result.quarantined["user_id"]) == {"bot"}
    assert result.quarantined["reason"].iloc[0] == (
        "user has more than 5 events in this batch (likely a bot; validate.max_events_per_user)"
    )


def test_volume_floor_from_previous_runs():
    from tasks.validation.checks import volume_floor

    config = ValidateConfig(max_volume_drop=0.5, volume_window=3, volume_min_runs=2)
    assert volume_floor([100], config)["floor"] is None  # too little history
    assert volume_floor([1000, 100, 100, 100], config) == {
        "floor": 50,
        "trailing_average": 100.0,
        "previous_runs": 3,
    }
    assert (
        volume_floor([100, 100], config.model_copy(update={"max_volume_drop": None}))["floor"]
        is None
    )


def test_a_volume_drop_fails_the_batch(gx_root):
    with pytest.raises(DataValidationError) as err:
        validate_interactions(
            frame(clean_rows()),
            gx_root=gx_root,
            config=ValidateConfig(),
            now=NOW,
            previous_volumes=[10, 12, 14],
        )
    message = str(err.value)
    assert "expect_table_row_count_to_be_between (volume) failed: observed 4 rows" in message
    assert "trailing average 12 of the previous 3 runs (at least 6 expected" in message
    assert "sample rows: user_id=u1, item_id=i1" in message


def test_stale_data_fails_the_batch(gx_root):
    rows = [*clean_rows()[:3], ("u9", "i9", "2024-07-01", 1.0)]  # a future outlier is no help
    config = ValidateConfig(max_event_age_days=7, max_quarantine_share=1.0)
    with pytest.raises(DataValidationError) as err:
        validate_interactions(frame(rows), gx_root=gx_root, config=config, now=NOW)
    message = str(err.value)
    assert "expect_column_max_to_be_between (stale data) failed" in message
    assert "newest acceptable event is 2024-05-03T00:00:00+00:00, older than 7 days" in message
    assert "newest rows: user_id=u9" in message


def test_markdown_summary_lists_counts_and_reasons(gx_root):
    from expectations.report import summary_markdown

    df = frame([*clean_rows(), (None, "i9", "2024-05-01", 1.0)])
    result = validate_interactions(df, gx_root=gx_root, config=LENIENT, now=NOW)
    text = summary_markdown(result)
    assert "| interactions | 5 | 4 | 1 | 0 | 0 |" in text
    assert "| user_id is null or blank | 1 |" in text
    assert "expect_column_values_to_not_be_null | user_id | row |" in text
    assert "FAILED" in summary_markdown(None, failure="boom")


def test_accumulate_appends_to_the_previous_snapshot_and_records_volume(tmp_path):
    validated = tmp_path / "validated"
    summaries = []
    for day, rows in (("2024-05-31", clean_rows()[:2]), ("2024-06-01", clean_rows()[2:])):
        raw = tmp_path / f"raw-{day}.parquet"
        frame(rows).to_parquet(raw)
        summaries.append(
            validate(
                str(raw),
                str(validated / f"run_date={day}"),
                str(tmp_path / "gx"),
                ValidateConfig(),
                NOW.isoformat(),
                accumulate=True,
            )
        )
    first, second = summaries
    assert first.history_snapshot is None and first.rows_total == 2
    assert second.history_snapshot.endswith("run_date=2024-05-31/interactions.parquet")
    assert second.rows_accepted == 2 and second.rows_total == 4
    assert len(pd.read_parquet(second.accepted_path)) == 4
    history = json.loads((tmp_path / "gx" / "volume_history.json").read_text())
    assert {k: v["rows_read"] for k, v in history.items()} == {
        "run_date=2024-05-31": 2,
        "run_date=2024-06-01": 2,
    }
    assert (validated / "run_date=2024-06-01" / "validation_summary.json").is_file()


def test_gx_keeps_no_validated_frame_after_the_run(tmp_path, monkeypatch):
    """GX's context outlives a validation; the frames it validated must not (at scale they
    are the whole batch, held for the rest of the night's run otherwise)."""
    import gc
    import weakref

    from expectations import runner

    validated = []
    run = runner.SuiteRunner.run

    def spy(self, suite, frame, **options):
        validated.append(weakref.ref(frame))
        return run(self, suite, frame, **options)

    monkeypatch.setattr(runner.SuiteRunner, "run", spy)
    result = validate_interactions(
        frame(clean_rows()), gx_root=tmp_path / "validation", config=ValidateConfig(), now=NOW
    )
    assert result.rows_accepted == 4
    del result
    gc.collect()
    assert validated and all(ref() is None for ref in validated)
