"""Two nights of different dates ingest one landing folder at once: each file goes in once."""

from __future__ import annotations

import json
import threading
import time
from datetime import date
from pathlib import Path

import pandas as pd

from tasks.config import FilesConfig
from tasks.sources import landing
from tasks.sources.landing import MANIFEST, PARTITION_FILE, ingest_landing

DAYS = (date(2024, 6, 1), date(2024, 6, 2))


def test_concurrent_nights_ingest_each_new_file_once(tmp_path: Path, monkeypatch) -> None:
    drop = tmp_path / "landing"
    drop.mkdir()
    (drop / "a.csv").write_text(
        "user_id,item_id,timestamp,value\n1,10,1717200000,4\n2,11,1717200001,5\n"
    )
    (drop / "b.csv").write_text("user_id,item_id,timestamp,value\n3,12,1717200002,3\n")
    real = landing.read_interactions

    def slow(*args, **kwargs):  # both nights are inside their ingest at the same time
        time.sleep(0.3)
        return real(*args, **kwargs)

    monkeypatch.setattr(landing, "read_interactions", slow)
    start = threading.Barrier(len(DAYS))
    stats: dict[date, dict] = {}
    errors: list[BaseException] = []

    def night(day: date) -> None:
        try:
            start.wait()
            stats[day] = ingest_landing(
                FilesConfig(path=drop), tmp_path / "raw" / f"ingest_date={day}", day
            )[1]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=night, args=(day,)) for day in DAYS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors
    stored = sum(
        len(pd.read_parquet(tmp_path / "raw" / f"ingest_date={d}" / PARTITION_FILE)) for d in DAYS
    )
    assert stored == 3  # not 6: one night took both files, the other found them taken
    assert sorted(len(s["files_ingested"]) for s in stats.values()) == [0, 2]
    manifest = json.loads((tmp_path / "raw" / MANIFEST).read_text())
    assert sorted(f["file"] for f in manifest["files"].values()) == ["a.csv", "b.csv"]
    assert sorted(manifest["partitions"]) == [f"ingest_date={d}" for d in DAYS]
    assert not list((tmp_path / "raw").rglob("*.tmp"))
