"""Where a refresh reads and records its events, and its batches' bookkeeping."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from tasks.config import load_config
from tasks.errors import ConfigError
from tasks.refresh import events

D = date(2026, 3, 2)


def config(tmp_path, **sections):
    return load_config(overrides={"workspace": str(tmp_path), **sections}, environ={})


def test_a_landing_nightly_shares_its_store_and_the_next_nights_partition(tmp_path) -> None:
    landing = tmp_path / "drops"
    cfg = config(tmp_path, ingest={"source": "landing", "files": {"path": str(landing)}})

    source = events.source_for(cfg, tmp_path, D, today=D)
    later = events.source_for(cfg, tmp_path, D, today=date(2026, 3, 5))

    assert source.shared and source.landing == landing.resolve()
    assert source.partition == tmp_path / "raw" / "ingest_date=2026-03-03"  # the next night's
    assert later.partition == tmp_path / "raw" / "ingest_date=2026-03-05"  # never a past one


def test_another_source_gets_a_store_of_its_own(tmp_path) -> None:
    cfg = config(tmp_path, refresh={"path": str(tmp_path / "drops")})

    source = events.source_for(cfg, tmp_path, D, today=D)

    assert not source.shared
    assert source.partition.parent == tmp_path / "refresh" / "landing"


def test_no_landing_folder_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"refresh\.path"):
        events.source_for(config(tmp_path), tmp_path, D, today=D)


def test_each_new_file_is_read_once(tmp_path) -> None:
    drops = tmp_path / "drops"
    drops.mkdir()
    cfg = config(tmp_path, refresh={"path": str(drops)})
    source = events.source_for(cfg, tmp_path, D, today=D)
    rows = {"user_id": ["u1", "u2"], "item_id": ["a", "b"], "timestamp": [1772409600] * 2}
    pd.DataFrame(rows).to_csv(drops / "one.csv", index=False)

    first, stats = events.read_new_events(cfg, source)
    again, _ = events.read_new_events(cfg, source)
    pd.DataFrame(rows).to_csv(drops / "copy-of-one.csv", index=False)  # same bytes
    copied, _ = events.read_new_events(cfg, source)

    assert first["user_id"].tolist() == ["u1", "u2"] and stats["newest_arrival"] is not None
    assert len(again) == 0 and len(copied) == 0


def test_pending_batches_and_histories(tmp_path) -> None:
    folder = tmp_path / "refresh" / f"run_date={D}"
    (folder / "accepted").mkdir(parents=True)
    t = pd.Timestamp(D, tz="UTC")
    first = pd.DataFrame({"user_id": ["u2", "u1"], "item_id": ["x", "y"], "timestamp": [t, t]})
    second = pd.DataFrame({"user_id": ["u3"], "item_id": ["z"], "timestamp": [t]})
    first.to_parquet(folder / "accepted" / "20260302T010000_a.parquet")
    second.to_parquet(folder / "accepted" / "20260302T020000_b.parquet")
    validated = tmp_path / "validated.parquet"
    old = t - pd.Timedelta(days=1)
    pd.DataFrame(
        {"user_id": ["u1", "u9"], "item_id": ["old", "other"], "timestamp": [old, old]}
    ).to_parquet(validated)

    assert events.batch_users(events.pending_batches(folder)) == ["u2", "u1", "u3"]
    events.mark_published(folder, events.pending_batches(folder)[:1])
    assert events.batch_users(events.pending_batches(folder)) == ["u3"]

    history = events.histories(validated, events.batches(folder), ["u1", "u3"])
    assert history[["user_id", "item_id"]].values.tolist() == [
        ["u1", "old"],  # the night's rows first, then the batches in order
        ["u1", "y"],
        ["u3", "z"],
    ]
