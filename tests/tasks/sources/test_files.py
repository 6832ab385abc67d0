"""The user's own files: column mapping, id and timestamp policies, CSV/Parquet/gzip."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from tasks.config import FilesConfig
from tasks.errors import DataError
from tasks.sources.columns import new_issues, normalize_ids, parse_timestamps, parse_values
from tasks.sources.file_listing import list_data_files
from tasks.sources.files import read_files, read_interactions

SECOND = pd.Timestamp("2023-11-14T22:13:20Z")  # epoch 1_700_000_000


def ts(raw: list, unit: str = "auto"):
    series = pd.Series(raw, dtype="str") if all(isinstance(v, str | None) for v in raw) else None
    series = pd.Series(raw) if series is None else series
    issues = new_issues(series.index)
    out, stats = parse_timestamps(series, unit, "timestamp", issues)
    return out, stats, issues


def test_epoch_seconds_milliseconds_and_iso_are_detected() -> None:
    out, stats, issues = ts(["1700000000", "1700000001"])
    assert stats["timestamp_unit"] == "s" and out[0] == SECOND and issues.isna().all()
    out, stats, _ = ts(["1700000000000", "1700000000500"])
    assert stats["timestamp_unit"] == "ms" and out[1] == SECOND + pd.Timedelta(milliseconds=500)
    out, stats, _ = ts(["2023-11-14T22:13:20Z", "2023-11-14 23:13:20+01:00", "2023-11-14"])
    assert stats["timestamp_unit"] == "iso"
    assert out[0] == SECOND and out[1] == SECOND and out[2] == pd.Timestamp("2023-11-14", tz="UTC")


def test_numeric_parquet_timestamps_and_datetimes() -> None:
    out, stats, _ = ts([1_700_000_000, 1_700_000_001])
    assert stats["timestamp_unit"] == "s" and out[0] == SECOND
    naive = pd.Series(pd.to_datetime(["2023-11-14 22:13:20"]))
    out, stats = parse_timestamps(naive, "auto", "timestamp", new_issues(naive.index))
    assert out[0] == SECOND and "taken as UTC" in stats["timestamp_unit"]


def test_auto_takes_the_majority_form_and_flags_the_others() -> None:
    out, stats, issues = ts(["1700000000", "1700000001", "1700000000000", "2023-11-14", "soon"])
    assert stats["timestamp_unit"] == "s"
    assert stats["timestamp_forms"] == {"s": 2, "ms": 1, "iso": 1, "text": 1}
    assert out[:2].notna().all() and out[2:].isna().all()
    assert "looks like epoch milliseconds but most of this file's timestamps are epoch" in issues[2]
    assert "timestamp_unit='mixed'" in issues[2]
    assert "looks like ISO 8601 text" in issues[3]
    assert "'soon' is not ISO 8601 text nor epoch" in issues[4]


def test_mixed_accepts_every_form_and_explicit_units_do_not_guess() -> None:
    out, _, issues = ts(["1700000000", "1700000000000", "2023-11-14T22:13:20Z"], "mixed")
    assert (out == SECOND).all() and issues.isna().all()
    out, _, issues = ts(["1700000000", "2023-11-14"], "s")
    assert out[0] == SECOND and pd.isna(out[1])
    assert "is not epoch seconds (timestamp_unit='s')" in issues[1]


def test_out_of_range_epoch_is_flagged_not_an_exception() -> None:
    out, _, issues = ts(["99999999999999999", "1700000000"])
    assert pd.isna(out[0]) and "within the years 1677-2262" in issues[0]


def test_ids_are_text_stripped_and_float_suffixes_removed() -> None:
    issues = new_issues(range(4))
    ids, stats = normalize_ids(pd.Series([" 1 ", "2", "3", None], dtype="str"), "user_id", issues)
    assert ids.tolist()[:3] == ["1", "2", "3"] and pd.isna(ids[3])
    assert stats == {
        "stripped": 1, "float_suffix_removed": 0, "float_vote": (True, False),
        "float_suffix": False,
    }  # fmt: skip
    ids, stats = normalize_ids(pd.Series(["1.0", "2", "30.00"], dtype="str"), "user_id", issues)
    assert ids.tolist() == ["1", "2", "30"] and stats["float_suffix_removed"] == 2
    # Not every id looks like a float: text such as "1.0" is then somebody's real id.
    ids, stats = normalize_ids(pd.Series(["1.0", "v2"], dtype="str"), "user_id", issues)
    assert ids.tolist() == ["1.0", "v2"] and stats["float_vote"] == (False, True)
    # A batch of a file follows the file's decision, whatever its own ids look like.
    ids, _ = normalize_ids(pd.Series(["4.0"], dtype="str"), "user_id", issues, False)
    assert ids.tolist() == ["4.0"]


def test_float_typed_ids_become_integers_and_fractions_are_flagged() -> None:
    issues = new_issues(range(3))
    ids, _ = normalize_ids(pd.Series([1.0, 2.5, np.nan]), "item_id", issues)
    assert ids[0] == "1" and ids[1] == "2.5" and pd.isna(ids[2])
    assert issues[1] == "item_id is a non-integral number" and pd.isna(issues[0])
    ids, _ = normalize_ids(pd.Series([7, 8], dtype="int64"), "item_id", new_issues(range(2)))
    assert ids.tolist() == ["7", "8"]


def test_values_are_numbers_and_text_is_flagged() -> None:
    issues = new_issues(range(5))
    values = parse_values(pd.Series(["4", "abc", "", "inf", "-1"], dtype="str"), "value", issues)
    assert values[0] == 4 and np.isnan(values[1]) and np.isnan(values[2]) and np.isinf(values[3])
    assert issues[1] == "value 'abc' is not a number" and issues.drop(1).isna().all()


def test_mapping_renames_and_drops_extra_columns(tmp_path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("uid,iid,when,stars,kind,comment\n7,42,1700000000,4,view,nice\n")
    config = FilesConfig(
        user_col="uid", item_col="iid", timestamp_col="when", value_col="stars",
        event_type_col="kind",
    )  # fmt: skip
    frame, stats = read_interactions(path, config, "events.csv")
    assert frame.columns.tolist() == [
        "user_id", "item_id", "timestamp", "value", "event_type", "ingest_issue", "source_file",
        "source_row", "source_text",
    ]  # fmt: skip
    row = frame.iloc[0]
    assert (row.user_id, row.item_id, row.value, row.event_type) == ("7", "42", 4.0, "view")
    assert row.timestamp == SECOND and row.source_file == "events.csv"
    assert stats["columns_ignored"] == ["comment"] and stats["timestamp_unit"] == "s"


def test_value_and_event_type_columns_are_optional(tmp_path) -> None:
    path = tmp_path / "clicks.csv"
    path.write_text("user_id,item_id,timestamp\na,b,2024-01-01T00:00:00Z\n")
    frame, _ = read_interactions(path, FilesConfig(), "clicks.csv")
    assert "value" not in frame.columns and "event_type" not in frame.columns
    with pytest.raises(DataError, match=r"column 'rating' \(value\) missing.*--value-col"):
        read_interactions(path, FilesConfig(value_col="rating"), "clicks.csv")


def test_csv_gzip_and_parquet_read_alike(tmp_path) -> None:
    text = "user_id,item_id,timestamp,value\n1,2,1700000000,3\n"
    (tmp_path / "a.csv").write_text(text)
    with gzip.open(tmp_path / "b.csv.gz", "wt") as handle:
        handle.write(text)
    pd.DataFrame(
        {"user_id": [1], "item_id": [2], "timestamp": [1_700_000_000], "value": [3.0]}
    ).to_parquet(tmp_path / "c.parquet")
    frame, report = read_files(FilesConfig(path=tmp_path))
    assert sorted(report["files"]) == ["a.csv", "b.csv.gz", "c.parquet"]
    contract = frame.drop(columns=["source_file", "ingest_issue"])
    assert contract.drop_duplicates().shape[0] == 1  # the same event from all three files
    assert frame["user_id"].tolist() == ["1", "1", "1"]


def test_folder_listing_skips_hidden_partial_and_other_files(tmp_path) -> None:
    for name in ("a.csv", "sub/b.parquet", ".hidden.csv", "c.csv.part", "_tmp.csv", "notes.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    files, skipped = list_data_files(tmp_path)
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["a.csv", "sub/b.parquet"]
    assert len(skipped) == 4 and any("notes.md: not a CSV or Parquet" in s for s in skipped)
    with pytest.raises(DataError, match="not a CSV or Parquet file name"):
        list_data_files(tmp_path / "notes.md")
    with pytest.raises(DataError, match="does not exist"):
        list_data_files(tmp_path / "nope")


def batched(path, config, batch_rows):
    """read_interactions in batches, and the batches it put before any restart."""
    from tasks.sources.files import convert_interactions

    frames, restarts = [], []
    stats = convert_interactions(
        path, config, path.name, frames.append, lambda: restarts.append(len(frames)), batch_rows
    )
    return pd.concat(frames, ignore_index=True), stats, restarts


def test_a_file_read_in_batches_is_the_file_read_whole(tmp_path) -> None:
    path = tmp_path / "events.csv"
    lines = [f" u{i % 3},i{i},{1_700_000_000 + i},{i % 5}" for i in range(7)]
    path.write_text("user_id,item_id,timestamp,value\n" + "\n".join(lines) + "\n")
    whole, whole_stats = read_interactions(path, FilesConfig(), "events.csv")
    frame, stats, restarts = batched(path, FilesConfig(), batch_rows=3)
    pd.testing.assert_frame_equal(frame, whole)
    assert stats == whole_stats and stats["rows"] == 7 and stats["ids_whitespace_stripped"] == 7
    assert restarts == []  # every batch decided as the whole file does


def test_batches_that_decide_unlike_the_file_are_converted_again(tmp_path) -> None:
    # The first batch alone would drop the ".0" of its ids and read epoch milliseconds;
    # the whole file has a non-integral id and mostly epoch seconds.
    rows = ["1.0,a,1700000000000", "2.0,b,1700000000001", "x,c,1700000000"]
    rows += [f"{i},d,{1_700_000_000 + i}" for i in range(3)]
    path = tmp_path / "odd.csv"
    path.write_text("user_id,item_id,timestamp\n" + "\n".join(rows) + "\n")
    whole, whole_stats = read_interactions(path, FilesConfig(), "odd.csv")
    frame, stats, restarts = batched(path, FilesConfig(), batch_rows=2)
    assert restarts == [3]  # after all three batches of the first conversion
    pd.testing.assert_frame_equal(frame.iloc[-6:].reset_index(drop=True), whole)
    assert frame["user_id"].iloc[-6 : 2 - 6].tolist() == ["1.0", "2.0"]
    assert stats["timestamp_unit"] == whole_stats["timestamp_unit"] == "s"
    assert stats["timestamp_forms"] == {"ms": 2, "s": 4}


def test_the_files_source_written_in_batches_equals_it_read_whole(tmp_path) -> None:
    from tasks.sources.files import write_files

    source = tmp_path / "in"
    source.mkdir()
    (source / "a.csv").write_text(
        "user_id,item_id,timestamp,value\n"
        + "\n".join(f"u{i},i{i % 4},{1_700_000_000 + i},{i % 6}" for i in range(9))
        + "\nu9,i1,17000"  # truncated: no newline, a field missing
    )
    pd.DataFrame(
        {"user_id": [7, 8], "item_id": [1, 2], "timestamp": pd.to_datetime([1, 2], utc=True)}
    ).to_parquet(source / "b.parquet")  # no value column
    config = FilesConfig(path=source)
    whole, report = read_files(config)
    stats = write_files(config, tmp_path / "raw.parquet", batch_rows=4)
    written = pd.read_parquet(tmp_path / "raw.parquet")
    pd.testing.assert_frame_equal(written, whole, check_dtype=False)
    assert written["value"].iloc[-2:].isna().all()
    assert "last line truncated" in written["ingest_issue"].iloc[9]
    assert stats["rows"] == 12 and stats["files"] == report["files"]
    assert not list(tmp_path.glob(".*"))  # the per-file parts are gone
