"""The bad-input catalog: every case ends in a clear error or a quarantine with a reason.

Never a raw traceback, never a silent drop. Policies:

| case                               | outcome                                                   |
|------------------------------------|-----------------------------------------------------------|
| empty file (0 bytes)               | DataError: empty, expected a header; re-export or remove  |
| header only                        | 0 rows read; alone: DataValidationError "batch is empty"  |
| missing required column            | DataError naming column, columns found, the --*-col option|
| extra columns                      | dropped at ingest, listed in stats["columns_ignored"]     |
| wrong delimiter                    | DataError: "header looks ';'-delimited: set --delimiter"  |
| ragged line (too many fields)      | DataError with the line number; check delimiter/quoting   |
| non-UTF-8 bytes                    | DataError: byte, line, offset; re-export or --encoding    |
| null / "NULL" / blank ids          | quarantined: "<col> is null or blank"                     |
| ids with surrounding whitespace    | stripped at ingest (counted); if they reach validation    |
|                                    | unstripped: quarantined                                   |
| control characters / very long ids | quarantined with the reason                               |
| numeric ids written as floats 1.0  | ids are text: "1" stays "1"; an all-"<int>.0" column      |
|                                    | becomes "1" (counted); Parquet floats 1.0 -> "1"          |
| NaN / inf / negative / text values | quarantined: null, not finite, outside range, not a number|
| s / ms / ISO timestamps mixed      | auto: majority form wins, others quarantined with the     |
|                                    | reason; timestamp_unit="mixed" accepts all (detected unit |
|                                    | reported in the stats)                                    |
| unparseable / future / ancient ts  | quarantined with the reason                               |
| duplicate events                   | first kept, the rest counted as duplicates dropped        |
| truncated last line                | the row is quarantined: "last line truncated: 2 of 4 ..." |
| gzip file                          | read like the plain file; a corrupt one: DataError        |
| corrupt Parquet                    | DataError: not a readable Parquet file; re-export         |
| file vanishes after listing        | landing: reported in files_vanished, read when it returns;|
|                                    | files source: DataError (SourceFileVanished)              |
| unknown items (catalog given)      | quarantined: "item_id not in the item catalog"            |
| one user with absurd event count   | all the user's rows quarantined as a likely bot           |
| yesterday's file under a new name  | landing: skipped by content hash, listed, 0 rows new      |
| most rows bad                      | DataValidationError: share, reasons, sample rows          |
| NFC vs NFD / invisible chars in ids| ids made NFC, U+200B/C/D, U+2060, U+FEFF removed; counted |
|                                    | per file and in total (ids_unicode_normalized)            |
| ISO timestamps without a zone      | taken as UTC; said once: ingest's timestamp_zone_assumed  |
| HTML / script in ids               | accepted as data, kept raw (ids are opaque, never run)    |
| catalog: duplicate / null ids      | null: quarantined "<col> is null or blank"; duplicates:   |
|                                    | first kept, the rest counted as duplicates dropped        |
| catalog: non-boolean `available`   | quarantined: "available is not a boolean ..."             |
| HTML / script in catalog titles    | kept raw as data (escaping is the publisher's job)        |
| a catalog of one item / one user   | runs: the row accepted, interactions checked against it   |
| Parquet: ts as text, user_id int   | coerced: text parsed like CSV text, ints -> decimal text  |
| Parquet: list / struct columns     | DataError naming the column; flatten it upstream          |
| symlinks in a source folder        | followed only when the target is inside the folder; others|
|                                    | listed in files_skipped                                   |
| half-written file (.part etc.)     | skipped this run and listed; read once renamed (next run) |
| landing file growing while read    | skipped, listed in files_still_changing, read next run    |
| gzip bomb (inflates beyond a cap)  | DataError before parsing, streamed (bounded memory)       |
| a line longer than a cap           | DataError with the line number, streamed, before parsing  |
| NFD / invisible chars in catalog   | normalised like interaction ids, so the two still match   |
| BOM before the header, CRLF ends   | read as usual: the BOM is not part of the first column    |
| duplicated header column           | DataError naming the column and the file                  |
| provenance of a quarantined row    | source_file, source_row (record number in the file) and,  |
|                                    | for rows failed at ingest, source_text: the raw fields    |
"""

from __future__ import annotations

import gzip
import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from tasks.config import FilesConfig, ValidateConfig
from tasks.errors import DataError, DataValidationError, RecpipeError
from tasks.sources.file_reader import SourceFileVanished, read_table
from tasks.sources.files import read_files, read_interactions
from tasks.sources.landing import ingest_landing
from tasks.validation.checks import validate_interactions

NOW = pd.Timestamp("2024-06-02T00:00:00Z")
T = 1717200000  # 2024-06-01T00:00:00Z
HEADER = "user_id,item_id,timestamp,value\n"
CONFIG = ValidateConfig(max_quarantine_share=1.0, max_events_per_user=50)

# One file per row-level case, read together; rows are found again by their source_file.
CASES = {
    "good.csv": HEADER + f"u1,i1,{T},4\nu2,i2,{T + 1},5\n",
    "null_ids.csv": HEADER + f",i1,{T},4\nNULL,i1,{T + 1},4\nu3,,{T},4\n",
    "blank_ids.csv": HEADER + f"u4,   ,{T},4\n",
    "whitespace_ids.csv": HEADER + f" u5 ,\ti1 ,{T},4\n",
    "float_ids.csv": (
        "user_id,item_id,timestamp,value\n6.0,1.0,1717200000,4\n7.0,2.0,1717200000,4\n"
    ),
    "control_id.csv": HEADER + f"u\x01x,i1,{T},4\n",
    "long_id.csv": HEADER + f"{'u' * 300},i1,{T},4\n",
    "nan_value.csv": HEADER + f"u8,i1,{T},NaN\n",
    "inf_value.csv": HEADER + f"u8,i2,{T},inf\n",
    "negative_value.csv": HEADER + f"u8,i1,{T + 5},-1\n",
    "text_value.csv": HEADER + f"u8,i2,{T + 5},five\n",
    "mixed_ts.csv": HEADER
    + f"u9,i1,{T},4\nu9,i2,{T + 1},4\nu9,i3,{T * 1000},4\nu9,i3,2024-06-01T10:00:00Z,4\n",
    "ms_ts.csv": HEADER + f"u10,i1,{T * 1000},4\nu10,i2,{T * 1000 + 1},4\n",
    "iso_ts.csv": HEADER + "u11,i1,2024-06-01T08:00:00+02:00,4\n",
    "bad_ts.csv": HEADER + f"u12,i1,yesterday,4\nu12,i2,{T},4\nu12,i3,{T + 1},4\n",
    "future_ts.csv": HEADER + f"u13,i1,{T + 30 * 86400},4\n",
    "ancient_ts.csv": HEADER + "u13,i2,0,4\n",
    "duplicates.csv": HEADER + f"u14,i1,{T},4\n" * 3,
    "truncated.csv": HEADER + f"u15,i1,{T},4\nu15,i2",
    "extra_cols.csv": "user_id,item_id,timestamp,value,comment,score\n" + f"u16,i1,{T},4,hello,9\n",
    "header_only.csv": HEADER,
    "unknown_item.csv": HEADER + f"u17,i-404,{T},4\n",
    "nfd_ids.csv": HEADER + f"caf\u00e9,i1,{T},4\ncafe\u0301,i2,{T},4\n",
    "invisible_ids.csv": HEADER
    + "".join(
        f"{u},i{n % 3 + 1},{T + n},4\n"
        for n, u in enumerate(
            ["u19\u200b", "u\u200c19", "u1\u200d9", "\u2060u19", "\ufeffu19", "\u200bi\u200b"]
        )
    ),
    "naive_ts.csv": HEADER + "u20,i1,2024-06-01T10:00:00,4\nu20,i2,2024-06-01T11:00:00,4\n",
    "html_ids.csv": HEADER + f"<script>alert(1)</script>,i1,{T},4\n<b>u21</b>,i2,{T},4\n",
    "bot.csv": HEADER + "".join(f"bot,i{n % 3 + 1},{T + n},4\n" for n in range(60)),
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Ingest every case file as one "files" source, then validate once (one GX run)."""
    folder = tmp_path_factory.mktemp("cases")
    for name, text in CASES.items():
        (folder / name).write_text(text, encoding="utf-8")
    with gzip.open(folder / "zipped.csv.gz", "wt") as handle:
        handle.write(HEADER + f"u18,i1,{T},4\n")
    frame, report = read_files(FilesConfig(path=folder))
    items = pd.DataFrame({"item_id": pd.array(["i1", "i2", "i3", "1", "2"], dtype="str")})
    gx_root = tmp_path_factory.mktemp("gx")
    result = validate_interactions(frame, gx_root=gx_root, config=CONFIG, now=NOW, items=items)
    return frame, report, result


def quarantined(run, case: str) -> list[str]:
    q = run[2].quarantined
    return q.loc[q["source_file"] == case, "reason"].tolist()


def accepted(run, case: str) -> pd.DataFrame:
    a = run[2].accepted
    return a[a["source_file"] == case]


def clear_error(error: type[RecpipeError], fn, *args, match: str) -> str:
    with pytest.raises(error, match=match) as info:
        fn(*args)
    return str(info.value)


def test_accounting_holds_for_the_whole_catalog(run) -> None:
    frame, _, result = run
    assert result.rows_read == len(frame)
    assert result.rows_read == result.rows_accepted + result.rows_quarantined + (
        result.duplicates_dropped
    )
    assert result.quarantined["reason"].notna().all()
    assert len(accepted(run, "good.csv")) == 2


def test_null_and_blank_ids(run) -> None:
    assert quarantined(run, "null_ids.csv") == [
        "user_id is null or blank",
        "user_id is null or blank",  # the text "NULL" is a null, as in pandas' default
        "item_id is null or blank",
    ]
    assert quarantined(run, "blank_ids.csv") == ["item_id is null or blank"]


def test_whitespace_is_stripped_at_ingest(run) -> None:
    row = accepted(run, "whitespace_ids.csv").iloc[0]
    assert (row.user_id, row.item_id) == ("u5", "i1")
    assert run[1]["files"]["whitespace_ids.csv"]["ids_whitespace_stripped"] == 2


def test_whitespace_that_reaches_validation_is_quarantined(tmp_path) -> None:
    df = pd.DataFrame(
        {
            "user_id": pd.array([" u1", "u2"], dtype="str"),
            "item_id": pd.array(["i1", "i2"], dtype="str"),
            "timestamp": pd.to_datetime([T, T], unit="s", utc=True),
        }
    )
    result = validate_interactions(df, gx_root=tmp_path, config=CONFIG, now=NOW)
    assert result.quarantined["reason"].tolist() == [
        "user_id has surrounding whitespace or control characters"
    ]


def test_float_written_ids_are_integers_again(run, tmp_path) -> None:
    assert sorted(accepted(run, "float_ids.csv")["user_id"]) == ["6", "7"]
    assert run[1]["files"]["float_ids.csv"]["ids_float_suffix_removed"] == 4
    assert accepted(run, "good.csv")["user_id"].tolist() == ["u1", "u2"]
    # Parquet with float ids (a column that once held NaN): 1.0 -> "1", never "1.0".
    pd.DataFrame({"user_id": [1.0, 2.0], "item_id": [3, 4], "timestamp": [T, T]}).to_parquet(
        tmp_path / "f.parquet"
    )
    frame, _ = read_interactions(tmp_path / "f.parquet", FilesConfig(), "f.parquet")
    assert frame["user_id"].tolist() == ["1", "2"] and frame["item_id"].tolist() == ["3", "4"]


def test_control_characters_and_long_ids(run) -> None:
    assert quarantined(run, "control_id.csv") == [
        "user_id has surrounding whitespace or control characters"
    ]
    assert quarantined(run, "long_id.csv") == ["user_id longer than 256 characters"]


def test_nan_inf_negative_and_text_values(run) -> None:
    assert quarantined(run, "nan_value.csv") == ["value is null or NaN"]
    assert quarantined(run, "inf_value.csv") == ["value is not finite; value outside [0, 5]"]
    assert quarantined(run, "negative_value.csv") == ["value outside [0, 5]"]
    assert quarantined(run, "text_value.csv") == [
        "value is null or NaN; ingest: value 'five' is not a number"
    ]


def test_mixed_timestamp_forms_in_one_file(run) -> None:
    stats = run[1]["files"]["mixed_ts.csv"]
    assert stats["timestamp_unit"] == "s"
    assert stats["timestamp_forms"] == {"s": 2, "ms": 1, "iso": 1}
    reasons = quarantined(run, "mixed_ts.csv")
    assert len(reasons) == 2 and len(accepted(run, "mixed_ts.csv")) == 2
    assert reasons[0].startswith("timestamp is null or unparseable; ingest: timestamp ")
    assert "looks like epoch milliseconds but most of this file's timestamps are" in reasons[0]
    assert "looks like ISO 8601 text" in reasons[1]


def test_mixed_forms_are_accepted_when_asked(tmp_path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(CASES["mixed_ts.csv"])
    frame, stats = read_interactions(path, FilesConfig(timestamp_unit="mixed"), "m.csv")
    assert frame["timestamp"].notna().all() and frame["ingest_issue"].isna().all()
    assert stats["timestamp_unit"] == "mixed"


def test_milliseconds_and_iso_files_are_detected(run) -> None:
    files = run[1]["files"]
    assert files["ms_ts.csv"]["timestamp_unit"] == "ms"
    assert files["iso_ts.csv"]["timestamp_unit"] == "iso"
    assert accepted(run, "ms_ts.csv")["timestamp"].min() == pd.Timestamp(T, unit="s", tz="UTC")
    assert accepted(run, "iso_ts.csv")["timestamp"].iloc[0] == pd.Timestamp("2024-06-01T06:00:00Z")


def test_unparseable_future_and_ancient_timestamps(run) -> None:
    assert quarantined(run, "bad_ts.csv") == [
        (
            "timestamp is null or unparseable; ingest: timestamp 'yesterday' is not ISO 8601 "
            "text nor epoch seconds/milliseconds within the years 1677-2262"
        )
    ]
    assert quarantined(run, "future_ts.csv") == ["timestamp more than 24h in the future"]
    assert quarantined(run, "ancient_ts.csv") == ["timestamp before 1995-01-01T00:00:00+00:00"]


def test_duplicate_events_are_counted(run) -> None:
    assert len(accepted(run, "duplicates.csv")) == 1 and not quarantined(run, "duplicates.csv")
    assert run[2].duplicates_dropped == 2


def test_truncated_last_line(run) -> None:
    assert len(accepted(run, "truncated.csv")) == 1
    (reason,) = quarantined(run, "truncated.csv")
    assert reason.startswith("timestamp is null or unparseable; value is null or NaN; ingest:")
    assert "last line truncated: 2 of 4 fields and no newline at the end of the file" in reason


def test_extra_columns_are_dropped_and_listed(run) -> None:
    assert run[1]["files"]["extra_cols.csv"]["columns_ignored"] == ["comment", "score"]
    assert len(accepted(run, "extra_cols.csv")) == 1
    assert "comment" not in run[2].accepted.columns


def test_gzip_file_is_read(run) -> None:
    assert accepted(run, "zipped.csv.gz")["user_id"].tolist() == ["u18"]


def test_unknown_items_are_quarantined(run) -> None:
    assert quarantined(run, "unknown_item.csv") == ["item_id not in the item catalog"]


def test_a_bot_is_quarantined(run) -> None:
    reasons = quarantined(run, "bot.csv")
    assert len(reasons) == 60 and set(reasons) == {
        "user has more than 50 events in this batch (likely a bot; validate.max_events_per_user)"
    }


def test_header_only(run, tmp_path) -> None:
    assert run[1]["files"]["header_only.csv"]["rows"] == 0
    (tmp_path / "h.csv").write_text(HEADER)
    frame, _ = read_files(FilesConfig(path=tmp_path / "h.csv"))
    clear_error(
        DataValidationError,
        lambda: validate_interactions(frame, gx_root=tmp_path, config=CONFIG, now=NOW),
        match=r"the batch is empty \(0 rows.*did today's files arrive",
    )


def test_empty_file(tmp_path) -> None:
    (tmp_path / "e.csv").write_bytes(b"")
    clear_error(
        DataError, read_table, tmp_path / "e.csv", FilesConfig(),
        match=r"e.csv: the file is empty \(0 bytes\); expected a header line.*re-export it",
    )  # fmt: skip


def test_missing_required_column(tmp_path) -> None:
    (tmp_path / "m.csv").write_text("uid,item_id,timestamp\n1,2,3\n")
    clear_error(
        DataError, read_interactions, tmp_path / "m.csv", FilesConfig(), "m.csv",
        match=r"m.csv: column 'user_id' \(user_id\) missing; found \['uid', 'item_id', "
        r"'timestamp'\]; map it with --user-col",
    )  # fmt: skip


def test_wrong_delimiter(tmp_path) -> None:
    (tmp_path / "d.csv").write_text("user_id;item_id;timestamp\n1;2;3\n")
    clear_error(
        DataError, read_interactions, tmp_path / "d.csv", FilesConfig(), "d.csv",
        match=r"the header looks ';'-delimited, not ',': set --delimiter ';'",
    )  # fmt: skip
    frame, _ = read_interactions(tmp_path / "d.csv", FilesConfig(delimiter=";"), "d.csv")
    assert frame["user_id"].tolist() == ["1"]


def test_ragged_line(tmp_path) -> None:
    (tmp_path / "r.csv").write_text(HEADER + f"u1,i1,{T},4\nu2,i2,{T},4,extra\n")
    clear_error(
        DataError, read_table, tmp_path / "r.csv", FilesConfig(),
        match=r"cannot be parsed as ','-delimited CSV.*line 3.*--delimiter",
    )  # fmt: skip


def test_non_utf8_bytes(tmp_path) -> None:
    (tmp_path / "l.csv").write_bytes((HEADER + f"u1,Am\xe9lie,{T},4\n").encode("latin-1"))
    clear_error(
        DataError, read_table, tmp_path / "l.csv", FilesConfig(),
        match=r"byte b'\\xe9' on line 2 \(offset \d+\) is not valid utf-8.*--encoding",
    )  # fmt: skip
    frame = read_table(tmp_path / "l.csv", FilesConfig(encoding="latin-1"))
    assert frame["item_id"].tolist() == ["Amélie"]


def test_corrupt_gzip_and_parquet(tmp_path) -> None:
    data = gzip.compress((HEADER + f"u1,i1,{T},4\n" * 100).encode())
    (tmp_path / "c.csv.gz").write_bytes(data[: len(data) // 2])
    clear_error(
        DataError, read_table, tmp_path / "c.csv.gz", FilesConfig(),
        match=r"gzip data is corrupt or cut short.*copy it again",
    )  # fmt: skip
    (tmp_path / "p.parquet").write_bytes(b"PAR1 not really")
    clear_error(
        DataError, read_table, tmp_path / "p.parquet", FilesConfig(),
        match=r"not a readable Parquet file.*re-export it",
    )  # fmt: skip


def test_a_file_that_vanished(tmp_path) -> None:
    message = clear_error(
        SourceFileVanished, read_table, tmp_path / "gone.csv", FilesConfig(),
        match=r"gone.csv: the file disappeared between listing and reading",
    )  # fmt: skip
    assert "read on the next run" in message  # the landing case: tests/tasks/test_ingest.py


def test_the_same_file_as_yesterday_under_a_new_name(tmp_path) -> None:
    drop = tmp_path / "landing"
    drop.mkdir()
    (drop / "2024-06-01.csv").write_text(HEADER + f"u1,i1,{T},4\n")
    store = tmp_path / "raw"
    ingest_landing(FilesConfig(path=drop), store / "ingest_date=2024-06-01", date(2024, 6, 1))
    (drop / "2024-06-01.csv").rename(drop / "2024-06-02.csv")
    partition, stats = ingest_landing(
        FilesConfig(path=drop), store / "ingest_date=2024-06-02", date(2024, 6, 2)
    )
    assert stats["rows_new"] == 0 and len(partition) == 0
    assert stats["files_already_ingested"] == [
        {"file": "2024-06-02.csv", "same_as": "2024-06-01.csv", "ingested_on": "2024-06-01"}
    ]


def test_missing_column_at_validation_names_the_expectation(tmp_path) -> None:
    df = pd.DataFrame({"user_id": ["u1"], "timestamp": pd.to_datetime([T], unit="s", utc=True)})
    message = clear_error(
        DataValidationError,
        lambda: validate_interactions(df, gx_root=tmp_path / "gx", config=CONFIG, now=NOW),
        match=r"expect_column_to_exist failed: required column\(s\) \['item_id'\] missing",
    )
    assert "sample rows: [{'user_id': 'u1'" in message
    assert not Path(tmp_path / "gx").exists()


def test_mostly_bad_batch_is_rejected_with_samples(tmp_path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + f"u1,i1,{T},4\n" + "".join(f"u{n},i1,{T},9\n" for n in range(2, 6)))
    frame, _ = read_files(FilesConfig(path=path))
    message = clear_error(
        DataValidationError,
        lambda: validate_interactions(frame, gx_root=tmp_path, config=ValidateConfig(), now=NOW),
        match=r"quarantine share 80.00% \(4 of 5 rows\) is above the threshold 5.00%",
    )
    assert "'value outside [0, 5]': 4" in message
    assert "row 1: user_id='u2', item_id='i1'" in message
    assert "raise validate.max_quarantine_share" in message


def test_tsv_files_are_tab_delimited_and_bad_encoding_names_are_config_errors(tmp_path) -> None:
    from tasks.config import load_config
    from tasks.errors import ConfigError

    (tmp_path / "t.tsv").write_text(f"user_id\titem_id\ttimestamp\nu1\ti1\t{T}\n")
    frame, _ = read_interactions(tmp_path / "t.tsv", FilesConfig(), "t.tsv")
    assert frame["item_id"].tolist() == ["i1"]
    with pytest.raises(ConfigError, match=r"ingest.files.encoding: .*unknown text encoding"):
        load_config(overrides={"ingest": {"files": {"encoding": "utf-9"}}}, environ={})


def test_duplicated_header_column(tmp_path) -> None:
    """Policy: a column named twice in a CSV header is refused (DataError naming it and the
    file)."""
    (tmp_path / "dup.csv").write_text("user_id,item_id,user_id,timestamp\nu1,i1,u2,1\n")
    clear_error(
        DataError, read_table, tmp_path / "dup.csv", FilesConfig(),
        match=r"dup.csv: column 'user_id' appears more than once in the header.*rename or remove",
    )  # fmt: skip


def test_nfc_and_nfd_forms_of_one_id_are_one_user(run) -> None:
    """Policy: ids are made NFC ("e" + U+0301 -> U+00E9), so both forms are one user; counted."""
    assert accepted(run, "nfd_ids.csv")["user_id"].tolist() == ["caf\u00e9", "caf\u00e9"]
    assert run[1]["files"]["nfd_ids.csv"]["ids_unicode_normalized"] == 1
    assert run[1]["files"]["good.csv"]["ids_unicode_normalized"] == 0


def test_invisible_characters_are_removed_from_ids(run) -> None:
    """Policy: U+200B/C/D, U+2060 and U+FEFF are removed from ids (counted), never kept."""
    rows = accepted(run, "invisible_ids.csv")
    assert rows["user_id"].tolist() == ["u19"] * 5 + ["i"]
    assert run[1]["files"]["invisible_ids.csv"]["ids_unicode_normalized"] == 6
    assert not quarantined(run, "invisible_ids.csv")


def test_timestamps_without_a_zone_are_utc_and_said_once(run, tmp_path) -> None:
    """Policy: an ISO timestamp without a zone is UTC; the ingest summary says so once."""
    from tasks.ingest import _file_summary

    rows = accepted(run, "naive_ts.csv")
    assert rows["timestamp"].iloc[0] == pd.Timestamp("2024-06-01T10:00:00Z")
    assert run[1]["files"]["naive_ts.csv"]["timestamps_without_zone"] == 2
    assert "timestamps_without_zone" not in run[1]["files"]["iso_ts.csv"]  # it has +02:00
    summary = _file_summary(run[1])
    assert summary["timestamp_zone_assumed"] == "UTC for 2 ISO timestamps written without a zone"
    assert summary["ids_unicode_normalized"] == 7


def test_html_in_ids_is_kept_raw(run) -> None:
    """Policy: ids are opaque text: HTML/script is accepted as data, kept raw, never run."""
    assert accepted(run, "html_ids.csv")["user_id"].tolist() == [
        "<script>alert(1)</script>",
        "<b>u21</b>",
    ]
    assert not quarantined(run, "html_ids.csv")


def _users_items_frame(users: list[str], items: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": pd.array(users, dtype="str"),
            "item_id": pd.array(items, dtype="str"),
            "timestamp": pd.to_datetime([T] * len(users), unit="s", utc=True),
        }
    )


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory):
    """One validation of a small batch against a bad item catalog and a bad user table."""
    items = pd.DataFrame(
        {
            "item_id": pd.array(["i1", "i1", None, "i2", "i3", "i4"], dtype="str"),
            "available": pd.array(["true", "false", "true", "maybe", "0", None], dtype="str"),
        }
    )
    users = pd.DataFrame({"user_id": pd.array(["u1", "u1", None, "u2"], dtype="str")})
    frame = _users_items_frame(["u1", "u2"], ["i1", "i3"])
    gx_root = tmp_path_factory.mktemp("gx-catalogs")
    return validate_interactions(
        frame, gx_root=gx_root, config=CONFIG, now=NOW, items=items, users=users
    )


def test_catalog_duplicate_and_null_ids(catalogs) -> None:
    """Policy: a catalog row without an id is quarantined; a repeated id keeps its first row."""
    items, users = catalogs.items, catalogs.users
    assert items.reasons["item_id is null or blank"] == 1 and items.duplicates_dropped == 1
    assert items.accepted["item_id"].tolist() == ["i1", "i3", "i4"]
    assert items.accepted["available"].tolist()[0] == "true"  # the first i1 wins
    assert users.quarantined["reason"].tolist() == ["user_id is null or blank"]
    assert users.duplicates_dropped == 1 and users.accepted["user_id"].tolist() == ["u1", "u2"]
    assert "items: 6 rows read = 3 accepted + 2 quarantined + 1 duplicates dropped" in (
        catalogs.accounting
    )


def test_catalog_available_that_is_not_a_boolean(catalogs) -> None:
    """Policy: `available` must be true/false/1/0 (null = available); else quarantined."""
    q = catalogs.items.quarantined
    assert q.loc[q["item_id"] == "i2", "reason"].tolist() == [
        "available is not a boolean (expected true/false/1/0)"
    ]
    assert q.loc[q["item_id"] == "i2", "available"].tolist() == ["maybe"]  # raw text kept


def test_html_in_catalog_titles_is_kept_raw(tmp_path) -> None:
    """Policy: titles are data: HTML/script is read and kept raw, never run or stripped."""
    from tasks.sources.files import read_items_catalog

    title = '<script>alert("x")</script> <b>Bold</b>'
    pd.DataFrame({"item_id": ["<i>1</i>"], "title": [title]}).to_csv(tmp_path / "items.csv")
    items = read_items_catalog(tmp_path / "items.csv", FilesConfig())
    assert items["item_id"].tolist() == ["<i>1</i>"] and items["title"].tolist() == [title]


def test_a_catalog_of_one_item_and_one_user(tmp_path) -> None:
    """Policy: one item / one user is a valid (tiny) catalog: the run goes on, rows checked."""
    items = pd.DataFrame({"item_id": pd.array(["i1"], dtype="str")})
    users = pd.DataFrame({"user_id": pd.array(["u1"], dtype="str")})
    frame = _users_items_frame(["u1", "u1"], ["i1", "i2"])
    result = validate_interactions(
        frame, gx_root=tmp_path, config=CONFIG, now=NOW, items=items, users=users
    )
    assert result.items.rows_accepted == 1 and result.users.rows_accepted == 1
    assert result.accepted["item_id"].tolist() == ["i1"]
    assert result.quarantined["reason"].tolist() == ["item_id not in the item catalog"]


def test_parquet_with_wrong_types_is_coerced(tmp_path) -> None:
    """Policy: Parquet timestamps as text are parsed like CSV text; int ids become text."""
    pd.DataFrame(
        {
            "user_id": [1, 2],
            "item_id": ["i1", "i2"],
            "timestamp": ["2024-06-01T00:00:00Z", "2024-06-01T02:00:00+02:00"],
        }
    ).to_parquet(tmp_path / "w.parquet")
    frame, stats = read_interactions(tmp_path / "w.parquet", FilesConfig(), "w.parquet")
    assert frame["user_id"].tolist() == ["1", "2"]
    assert stats["timestamp_unit"] == "iso"
    assert frame["timestamp"].tolist() == [pd.Timestamp(T, unit="s", tz="UTC")] * 2


def test_parquet_with_nested_columns(tmp_path) -> None:
    """Policy: a list / struct value in a mapped column is refused, naming the column."""
    pd.DataFrame(
        {"user_id": [[1, 2], [3]], "item_id": ["i1", "i2"], "timestamp": [T, T]}
    ).to_parquet(tmp_path / "l.parquet")
    clear_error(
        DataError, read_interactions, tmp_path / "l.parquet", FilesConfig(), "l.parquet",
        match=r"l.parquet: column 'user_id' \(user_id\) holds nested values \(a list, "
        r"e.g. \[1, 2\]\).*flatten it upstream",
    )  # fmt: skip
    pd.DataFrame({"user_id": ["u1"], "item_id": [{"id": "i1"}], "timestamp": [T]}).to_parquet(
        tmp_path / "s.parquet"
    )
    clear_error(
        DataError, read_interactions, tmp_path / "s.parquet", FilesConfig(), "s.parquet",
        match=r"column 'item_id' \(item_id\) holds nested values \(a struct/map",
    )  # fmt: skip


def test_symlinks_are_followed_only_inside_the_folder(tmp_path) -> None:
    """Policy: a symlink is read only when its target is inside the source folder."""
    folder, outside = tmp_path / "in", tmp_path / "secret"
    folder.mkdir()
    outside.mkdir()
    (folder / "a.csv").write_text(HEADER + f"u1,i1,{T},4\n")
    (folder / "inside.csv").symlink_to(folder / "a.csv")
    (outside / "b.csv").write_text(HEADER + f"u2,i2,{T},4\n")
    (folder / "out.csv").symlink_to(outside / "b.csv")
    (folder / "outdir").symlink_to(outside, target_is_directory=True)
    frame, report = read_files(FilesConfig(path=folder))
    assert sorted(frame["source_file"].unique()) == ["a.csv", "inside.csv"]
    assert "u2" not in set(frame["user_id"])
    assert "out.csv: a symlink to outside the folder, not read" in report["files_skipped"]


def test_a_half_written_file_is_read_next_run(tmp_path) -> None:
    """Policy: a file still being copied (.part, .tmp, ...) is skipped and listed this run,
    then read on the run after it is renamed to its final name."""
    drop, store = tmp_path / "landing", tmp_path / "raw"
    drop.mkdir()
    (drop / "a.csv").write_text(HEADER + f"u1,i1,{T},4\n")
    (drop / "b.csv.part").write_text(HEADER + f"u2,i2,{T},4\nu2,i")
    partition, stats = ingest_landing(
        FilesConfig(path=drop), store / "ingest_date=2024-06-01", date(2024, 6, 1)
    )
    assert partition["user_id"].tolist() == ["u1"]
    assert "b.csv.part: hidden or partially written file, not read" in str(stats)
    (drop / "b.csv.part").write_text(HEADER + f"u2,i2,{T},4\nu2,i3,{T},4\n")
    (drop / "b.csv.part").rename(drop / "b.csv")
    partition, stats = ingest_landing(
        FilesConfig(path=drop), store / "ingest_date=2024-06-02", date(2024, 6, 2)
    )
    assert partition["user_id"].tolist() == ["u2", "u2"] and stats["rows_new"] == 2


def test_a_gzip_bomb_is_refused(tmp_path, monkeypatch) -> None:
    """Policy: a .gz inflating beyond file_checks.MAX_DECOMPRESSED_BYTES is refused, streamed."""
    from tasks.sources import file_checks

    monkeypatch.setattr(file_checks, "MAX_DECOMPRESSED_BYTES", 100_000)
    with gzip.open(tmp_path / "bomb.csv.gz", "wb") as handle:
        handle.write(HEADER.encode() + b"0" * 5_000_000)  # 5 MB of zeros: ~5 kB zipped
    assert (tmp_path / "bomb.csv.gz").stat().st_size < 50_000
    clear_error(
        DataError, read_table, tmp_path / "bomb.csv.gz", FilesConfig(),
        match=r"bomb.csv.gz: the gzip data inflates to more than 100,000 bytes \(the cap\)",
    )  # fmt: skip
    (tmp_path / "small.csv.gz").write_bytes(gzip.compress((HEADER + f"u1,i1,{T},4\n").encode()))
    assert read_table(tmp_path / "small.csv.gz", FilesConfig())["user_id"].tolist() == ["u1"]


def test_a_line_longer_than_the_cap_is_refused(tmp_path, monkeypatch) -> None:
    """Policy: a line beyond file_checks.MAX_LINE_BYTES is refused with its number, streamed."""
    from tasks.sources import file_checks

    monkeypatch.setattr(file_checks, "MAX_LINE_BYTES", 2_000_000)
    long_line = "u" * 1_500_000 + "," + "i" * 1_500_000 + f",{T},4\n"  # spans read chunks
    (tmp_path / "long.csv").write_text(HEADER + f"u1,i1,{T},4\n" + long_line)
    clear_error(
        DataError, read_table, tmp_path / "long.csv", FilesConfig(),
        match=r"long.csv: line 3 is longer than 2,000,000 bytes \(the cap\).*line endings",
    )  # fmt: skip
    (tmp_path / "ok.csv").write_text(HEADER + "u" * 1_000_000 + f",i1,{T},4\n")
    assert len(read_table(tmp_path / "ok.csv", FilesConfig())) == 1


def test_catalog_ids_are_normalised_like_interaction_ids(tmp_path) -> None:
    """Policy: catalog ids get the same NFC + invisible-character rule as interaction ids."""
    from tasks.sources.files import read_items_catalog

    (tmp_path / "items.csv").write_text("item_id,title\ncafe\u0301,Caf\u00e9\n\u200bi2,Two\n")
    items = read_items_catalog(tmp_path / "items.csv", FilesConfig())
    assert items["item_id"].tolist() == ["caf\u00e9", "i2"]
    (tmp_path / "e.csv").write_text(HEADER + f"caf\u00e9,caf\u00e9,{T},4\nu2,i2,{T},4\n")
    frame, _ = read_files(FilesConfig(path=tmp_path / "e.csv"))
    assert set(frame["item_id"]) <= set(items["item_id"])


def test_a_landing_file_still_growing_is_read_next_run(tmp_path, monkeypatch) -> None:
    """Policy: a file whose size/mtime changes while it is read is skipped and listed this
    run (not in the manifest), and read whole on the next run."""
    from tasks.sources import landing

    drop, store = tmp_path / "landing", tmp_path / "raw"
    drop.mkdir()
    (drop / "a.csv").write_text(HEADER + f"u1,i1,{T},4\n")
    real = landing.read_interactions

    def read_while_the_copy_goes_on(path, config, name):
        out = real(path, config, name)
        with open(path, "a") as handle:  # the writer appends meanwhile
            handle.write(f"u2,i2,{T},4\n")
        return out

    monkeypatch.setattr(landing, "read_interactions", read_while_the_copy_goes_on)
    partition, stats = ingest_landing(
        FilesConfig(path=drop), store / "ingest_date=2024-06-01", date(2024, 6, 1)
    )
    assert len(partition) == 0 and stats["files_still_changing"] == ["a.csv"]
    assert stats["files_ingested"] == []
    monkeypatch.setattr(landing, "read_interactions", real)
    partition, stats = ingest_landing(
        FilesConfig(path=drop), store / "ingest_date=2024-06-02", date(2024, 6, 2)
    )
    assert partition["user_id"].tolist() == ["u1", "u2"] and stats["files_still_changing"] == []


def test_a_byte_order_mark_and_windows_line_endings(tmp_path) -> None:
    """Policy: a UTF-8 BOM and CRLF line endings (Excel exports) are read as usual."""
    text = "\ufeffuser_id,item_id,timestamp,value\r\n" + f"u1,i1,{T},4\r\nu2,i2,{T},4\r\n"
    (tmp_path / "x.csv").write_bytes(text.encode())
    frame, stats = read_interactions(tmp_path / "x.csv", FilesConfig(), "x.csv")
    assert frame["user_id"].tolist() == ["u1", "u2"] and frame["value"].tolist() == [4.0, 4.0]
    assert not stats["truncated_last_line"] and frame["ingest_issue"].isna().all()


def test_quarantined_rows_keep_their_file_row_and_original_text(run) -> None:
    q = run[2].quarantined
    bad = q[q["source_file"] == "bad_ts.csv"].iloc[0]
    assert bad["source_row"] == 1  # the first record after the header: line 2 of the file
    assert json.loads(bad["source_text"]) == {
        "user_id": "u12", "item_id": "i1", "timestamp": "yesterday", "value": "4",
    }  # fmt: skip
    truncated = q[q["source_file"] == "truncated.csv"].iloc[0]
    assert truncated["source_row"] == 2
    assert json.loads(truncated["source_text"]) == {
        "user_id": "u15", "item_id": "i2", "timestamp": None, "value": None,
    }  # fmt: skip
    text_value = q[q["source_file"] == "text_value.csv"].iloc[0]
    assert json.loads(text_value["source_text"])["value"] == "five"
    # failed in validation, not at ingest: the parsed fields are the original ones
    future = q[q["source_file"] == "future_ts.csv"].iloc[0]
    assert future["source_row"] == 1 and pd.isna(future["source_text"])
    mixed = q[q["source_file"] == "mixed_ts.csv"]
    assert mixed["source_row"].tolist() == [3, 4]
    assert "source_row" not in run[2].accepted.columns
    assert "source_text" not in run[2].accepted.columns


def test_parquet_rows_keep_their_position_in_the_file(tmp_path) -> None:
    path = tmp_path / "events.parquet"
    pd.DataFrame(
        {"user_id": ["u1", "u2", "u3"], "item_id": ["i1", "i2", "i3"],
         "timestamp": [str(T), "soon", str(T + 1)]}
    ).to_parquet(path, row_group_size=2)  # fmt: skip
    frame, _ = read_interactions(path, FilesConfig(path=path), "events.parquet", batch_rows=2)
    assert frame["source_row"].tolist() == [1, 2, 3]
    assert frame["source_text"].isna().tolist() == [True, False, True]
    assert json.loads(frame["source_text"][1])["timestamp"] == "soon"


def test_what_reading_changed_is_said_once_in_the_run_summary(run) -> None:
    from flows.cli.summary import ingest_notes
    from tasks.ingest import _file_summary

    notes = ingest_notes(_file_summary(run[1]))
    assert "7 ids normalised to Unicode NFC / invisible characters removed" in notes
    assert "timestamps: UTC for 2 ISO timestamps written without a zone" in notes
    assert any(note.endswith("ids with surrounding whitespace stripped") for note in notes)
    # how the timestamps were read is reported, with the forms the values had
    read = [note for note in notes if note.startswith("timestamps read as")]
    assert len(read) == 1 and "--timestamp-unit to force" in read[0], notes
