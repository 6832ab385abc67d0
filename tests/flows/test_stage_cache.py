"""The skip cache: hits only when inputs, settings, code and outputs are all unchanged."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest

from tasks.config import IngestConfig
from tasks.stage_cache import StageCache, ingest_parts, tree_digest

DAY = date(2026, 3, 2)


class Stage:
    """A fake stage writing one output file; counts its runs."""

    def __init__(self, out: Path) -> None:
        self.out, self.calls = out, 0

    def __call__(self) -> dict:
        self.calls += 1
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "table.parquet").write_text(f"run {self.calls}")
        return {"path": str(self.out / "table.parquet"), "rows": 3}


@pytest.fixture
def setup(tmp_path: Path) -> tuple[StageCache, Stage, Path]:
    out = tmp_path / "validated" / "run_date=2026-03-02"
    return StageCache(tmp_path / "markers", DAY, flow_run_id="run-1"), Stage(out), out


def test_unchanged_inputs_and_outputs_skip_the_stage(setup) -> None:
    cache, stage, out = setup
    first = cache.run("features", {"data": "abc"}, [out], stage)
    again = cache.run("features", {"data": "abc"}, [out], stage)
    assert stage.calls == 1 and again == first and cache.hits == {"features": "run-1"}


def test_changed_inputs_run_the_stage_again(setup) -> None:
    cache, stage, out = setup
    cache.run("features", {"data": "abc"}, [out], stage)
    cache.run("features", {"data": "abd"}, [out], stage)
    assert stage.calls == 2 and cache.misses["features"] == "inputs, settings or code changed"


def test_touched_or_deleted_outputs_run_the_stage_again(setup) -> None:
    cache, stage, out = setup
    cache.run("features", {"data": "abc"}, [out], stage)
    target = out / "table.parquet"
    os.utime(target, ns=(1, 1))  # same bytes, another writer's mtime
    cache.run("features", {"data": "abc"}, [out], stage)
    assert stage.calls == 2 and cache.misses["features"] == "its output files changed since"
    target.unlink()
    cache.run("features", {"data": "abc"}, [out], stage)
    assert stage.calls == 3


def test_a_failing_stage_leaves_no_marker(setup) -> None:
    cache, stage, out = setup
    cache.run("features", {"data": "abc"}, [out], stage)

    def broken() -> dict:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        cache.run("features", {"data": "new"}, [out], broken)
    assert not cache.marker("features").exists()


def test_disabled_cache_and_reuse_off_always_run(setup, tmp_path: Path) -> None:
    cache, stage, out = setup
    off = StageCache(tmp_path / "markers", DAY, enabled=False)
    off.run("features", {"data": "abc"}, [out], stage)
    off.run("features", {"data": "abc"}, [out], stage)
    assert stage.calls == 2 and not off.marker("features").exists()
    cache.run("train-ease", {"f": 1}, [out], stage, reuse=False)
    assert cache.marker("train-ease").exists()  # recorded for a later run that reuses
    cache.run("train-ease", {"f": 1}, [out], stage)
    assert stage.calls == 3  # reused now


def test_still_valid_can_veto_a_hit(setup) -> None:
    cache, stage, out = setup
    cache.run("train-ease", {"f": 1}, [out], stage)
    cache.run("train-ease", {"f": 1}, [out], stage, still_valid=lambda result: False)
    assert stage.calls == 2 and cache.misses["train-ease"] == "what it refers to is gone"


def test_landing_key_changes_when_a_file_arrives(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "day1.csv").write_text("user_id,item_id,timestamp\nu1,i1,1700000000\n")
    config = IngestConfig.model_validate({"source": "landing", "files": {"path": str(landing)}})
    before = ingest_parts(config, DAY, False, tmp_path)
    assert ingest_parts(config, DAY, False, tmp_path) == before
    (landing / "day2.csv").write_text("user_id,item_id,timestamp\nu2,i1,1700000001\n")
    assert ingest_parts(config, DAY, False, tmp_path) != before


def test_files_key_follows_content_not_name(tmp_path: Path) -> None:
    data = tmp_path / "events.csv"
    data.write_text("a")
    first = tree_digest(data)
    data.write_text("b")
    assert tree_digest(data) != first
    demo = IngestConfig()
    assert ingest_parts(demo, DAY, False, tmp_path) != ingest_parts(
        demo, date(2026, 3, 3), False, tmp_path
    )
