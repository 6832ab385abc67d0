"""The floor of the growth benchmark: a bare Arrow pass with known figures, and its ratios."""

from __future__ import annotations

import pandas as pd
import pytest

from flows.bench.floor import arrow_floor, ratios
from flows.bench.growth import floor_report


def test_the_floor_pass_reads_checks_and_groups_every_part(tmp_path) -> None:
    folder = tmp_path / "interactions"
    folder.mkdir()
    ts = pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-01"], utc=True)
    pd.DataFrame(
        {"user_id": ["u1", "u1", "u2"], "item_id": ["i1", "i2", None], "timestamp": ts}
    ).to_parquet(folder / "part-00000.parquet")
    pd.DataFrame({"user_id": ["u1", ""], "item_id": ["i1", "i3"], "timestamp": ts[:2]}).to_parquet(
        folder / "part-00001.parquet"
    )
    floor = arrow_floor(folder)
    assert floor["rows"] == 5
    assert floor["users"] == 3  # u1, u2 and the blank id
    assert floor["items"] == 4  # i1, i2, i3 and the null
    assert floor["duplicates"] == 1  # (u1, i1, 2026-01-01) twice
    assert floor["nulls"] == 1 and floor["blank_ids"] == 1
    assert floor["seconds"] >= 0


def test_an_empty_folder_has_no_floor(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no Parquet files"):
        arrow_floor(tmp_path)


def test_ratios_and_the_report_put_each_data_stage_beside_the_floor() -> None:
    stages = {"ingest": 3.0, "validate": 12.0, "train": 50.0, "publish": 1.5}
    assert ratios(stages, 1.5) == {"ingest": 2.0, "validate": 8.0, "publish": 1.0}
    result = {"n": 1_000_000, "stage_seconds": stages, "floor": {"seconds": 1.5}}
    lines = floor_report([result])
    assert lines[1].split() == ["stage", "1M"]
    assert lines[2].split() == ["floor", "1.50", "s"]
    assert [line.split() for line in lines[3:]] == [
        ["ingest", "3.0", "s", "2.0x"],
        ["validate", "12.0", "s", "8.0x"],
        ["features", "-"],
        ["check", "-"],
        ["publish", "1.5", "s", "1.0x"],
        ["report", "-"],
    ]
