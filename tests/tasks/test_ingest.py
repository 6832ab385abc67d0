"""ingest for every source, and the landing folder's exactly-once behaviour."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from tasks.config import DemoConfig, FilesConfig, IngestConfig
from tasks.errors import DataError
from tasks.ingest import ingest
from tasks.sources import landing
from tasks.sources.landing import MANIFEST, ingest_landing

DAY1, DAY2 = date(2024, 6, 1), date(2024, 6, 2)
HEADER = "user_id,item_id,timestamp,value\n"


def raw_dir(root: Path, day: date) -> Path:
    return root / "raw" / f"ingest_date={day.isoformat()}"


def landing_config(folder: Path) -> IngestConfig:
    return IngestConfig(source="landing", files=FilesConfig(path=folder))


def test_demo_source_keeps_its_interface(tmp_path) -> None:
    config = IngestConfig(demo=DemoConfig(n_users=20, n_items=30))
    out = ingest(config, DAY1, str(raw_dir(tmp_path, DAY1)))
    assert {"source", "rows", "interactions_path", "items_path"} <= out.summary().keys()
    assert out.source == "demo" and out.users_path is None and not out.incremental
    assert len(pd.read_parquet(out.interactions_path)) == out.rows == out.rows_new
    assert Path(out.items_path).is_file()


def test_files_source_reports_what_it_detected(tmp_path) -> None:
    data = tmp_path / "in"
    data.mkdir()
    (data / "a.csv").write_text("u,i,t,extra\n1, 2 ,1700000000000,x\n")
    (data / "items.csv").write_text("i,title\n2,Two\n")
    files = FilesConfig(
        path=data / "a.csv", user_col="u", item_col="i", timestamp_col="t",
        items_path=data / "items.csv",
    )  # fmt: skip
    out = ingest(IngestConfig(source="files", files=files), DAY1, str(tmp_path / "raw"))
    assert out.timestamp_unit == "ms" and out.files_ingested == ["a.csv"]
    assert out.stats["columns_ignored"] == ["extra"]
    assert out.stats["ids_whitespace_stripped"] == 1
    assert pd.read_parquet(out.items_path)["item_id"].tolist() == ["2"]
    assert pd.read_parquet(out.interactions_path)["item_id"].tolist() == ["2"]


def test_files_source_needs_a_path(tmp_path) -> None:
    with pytest.raises(DataError, match=r"needs ingest.files.path.*--path"):
        ingest(IngestConfig(source="files"), DAY1, str(tmp_path))


def test_landing_ingests_each_file_once_and_reruns_are_idempotent(tmp_path) -> None:
    drop = tmp_path / "landing"
    drop.mkdir()
    (drop / "d1.csv").write_text(HEADER + "1,10,1717200000,4\n2,11,1717200001,5\n")
    config = landing_config(drop)
    first = ingest(config, DAY1, str(raw_dir(tmp_path, DAY1)))
    assert (first.rows, first.rows_new, first.files_ingested) == (2, 2, ["d1.csv"])
    assert first.incremental

    again = ingest(config, DAY1, str(raw_dir(tmp_path, DAY1)))  # re-run of the night
    assert (again.rows, again.rows_new, again.files_ingested) == (2, 0, [])
    assert again.stats["files_already_ingested"][0]["same_as"] == "d1.csv"
    pd.testing.assert_frame_equal(
        pd.read_parquet(first.interactions_path), pd.read_parquet(again.interactions_path)
    )

    # Next night: yesterday's file under a new name, plus a file overlapping the store.
    (drop / "d1-resent.csv").write_bytes((drop / "d1.csv").read_bytes())
    (drop / "d2.csv").write_text(HEADER + "2,11,1717200001,5\n3,12,1717286400,3\n")
    second = ingest(config, DAY2, str(raw_dir(tmp_path, DAY2)))
    stats = second.stats
    assert second.files_ingested == ["d2.csv"]
    assert {r["file"] for r in stats["files_already_ingested"]} == {"d1.csv", "d1-resent.csv"}
    assert (stats["rows_in_new_files"], stats["rows_already_stored"], second.rows_new) == (
        2,
        1,
        1,
    )
    day2 = pd.read_parquet(second.interactions_path)
    assert day2["user_id"].tolist() == ["3"] and day2["source_file"].tolist() == ["d2.csv"]
    assert len(pd.read_parquet(first.interactions_path)) == 2  # day 1 untouched

    manifest = json.loads((tmp_path / "raw" / MANIFEST).read_text())
    assert sorted(e["file"] for e in manifest["files"].values()) == ["d1.csv", "d2.csv"]
    assert manifest["partitions"] == ["ingest_date=2024-06-01", "ingest_date=2024-06-02"]


def test_a_crash_before_the_manifest_is_written_stores_nothing_twice(tmp_path) -> None:
    drop = tmp_path / "landing"
    drop.mkdir()
    (drop / "d1.csv").write_text(HEADER + "1,10,1717200000,4\n")
    ingest_landing(FilesConfig(path=drop), raw_dir(tmp_path, DAY1), DAY1)
    manifest_path = tmp_path / "raw" / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["files"] = {}  # as if the run died between the two writes
    manifest_path.write_text(json.dumps(manifest))
    partition, stats = ingest_landing(FilesConfig(path=drop), raw_dir(tmp_path, DAY2), DAY2)
    assert stats["files_ingested"] == ["d1.csv"] and stats["rows_already_stored"] == 1
    assert len(partition) == 0


def test_a_file_that_vanishes_is_reported_and_read_when_it_returns(tmp_path, monkeypatch) -> None:
    drop = tmp_path / "landing"
    drop.mkdir()
    (drop / "a.csv").write_text(HEADER + "1,10,1717200000,4\n")
    (drop / "b.csv").write_text(HEADER + "2,10,1717200000,4\n")
    real = landing.read_interactions

    def vanishing(path, config, name):
        if name == "b.csv":
            kept = path.read_bytes()
            path.unlink()  # moved away by its writer after we listed it
            try:
                return real(path, config, name)
            finally:
                path.write_bytes(kept)
        return real(path, config, name)

    monkeypatch.setattr(landing, "read_interactions", vanishing)
    partition, stats = ingest_landing(FilesConfig(path=drop), raw_dir(tmp_path, DAY1), DAY1)
    assert stats["files_vanished"] == ["b.csv"] and partition["user_id"].tolist() == ["1"]
    monkeypatch.setattr(landing, "read_interactions", real)
    partition, stats = ingest_landing(FilesConfig(path=drop), raw_dir(tmp_path, DAY2), DAY2)
    assert stats["files_ingested"] == ["b.csv"] and partition["user_id"].tolist() == ["2"]


def test_an_unreadable_file_stops_the_run_and_records_nothing(tmp_path) -> None:
    drop = tmp_path / "landing"
    drop.mkdir()
    (drop / "a.csv").write_text(HEADER + "1,10,1717200000,4\n")
    (drop / "b.csv").write_text("uid;iid;ts\n1;2;3\n")
    with pytest.raises(DataError, match=r"b.csv: column 'user_id'.*looks ';'-delimited"):
        ingest_landing(FilesConfig(path=drop), raw_dir(tmp_path, DAY1), DAY1)
    assert not (tmp_path / "raw" / MANIFEST).exists()


def test_landing_errors_are_clear(tmp_path) -> None:
    with pytest.raises(DataError, match=r"landing folder .* does not exist"):
        ingest_landing(FilesConfig(path=tmp_path / "nope"), raw_dir(tmp_path, DAY1), DAY1)
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / MANIFEST).write_text("{not json")
    with pytest.raises(DataError, match="landing manifest is not valid JSON"):
        ingest_landing(FilesConfig(path=tmp_path), raw_dir(tmp_path, DAY1), DAY1)


def test_only_downloads_and_unexpected_errors_are_retried() -> None:
    from prefect.states import Failed

    from tasks.ingest import _retry_io_only
    from tasks.sources.movielens import DownloadError

    def retried(exc: BaseException) -> bool:
        return _retry_io_only(None, None, Failed(data=exc))

    assert retried(DownloadError("network down")) and retried(OSError("disk hiccup"))
    assert not retried(DataError("bad file"))  # the same input fails the same way
