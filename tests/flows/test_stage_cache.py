"""The skip cache: hits only when inputs, settings, code and outputs are all unchanged."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from datetime import date
from pathlib import Path

import pytest

from flows.stage_keys import features_parts, ingest_parts
from tasks.config import FeatureConfig, IngestConfig
from tasks.evaluate import ModelResult
from tasks.features import FeaturesResult
from tasks.storage.cache import StageCache, resolve_paths, to_relative
from tasks.storage.workspace import Workspace

DAY = date(2026, 3, 2)


class Stage:
    """A fake features stage writing one output file; counts its runs."""

    def __init__(self, out: Path) -> None:
        self.out, self.calls = out, 0

    def __call__(self) -> FeaturesResult:
        self.calls += 1
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "table.parquet").write_text(f"run {self.calls}")
        return FeaturesResult(
            features_dir=str(self.out),
            partitions=1,
            cutoff="2026-03-01T12:00:00+00:00",
            holdout=None,
            n_users=2,
            n_items=2,
            first_event="2026-03-01T00:00:00+00:00",
            last_event="2026-03-02T00:00:00+00:00",
            n_train=3,
            n_valid=1,
        )


@pytest.fixture
def setup(tmp_path: Path) -> tuple[StageCache, Stage, Path]:
    out = tmp_path / "features" / "run_date=2026-03-02"
    cache = StageCache(tmp_path / "markers", DAY, flow_run_id="run-1", root=tmp_path)
    return cache, Stage(out), out


def test_unchanged_inputs_and_outputs_skip_the_stage(setup) -> None:
    cache, stage, out = setup
    first = cache.run("features", {"data": "abc"}, [out], stage, result_type=FeaturesResult)
    again = cache.run("features", {"data": "abc"}, [out], stage, result_type=FeaturesResult)
    assert stage.calls == 1 and again == first and cache.hits == {"features": "run-1"}


def test_changed_inputs_run_the_stage_again(setup) -> None:
    cache, stage, out = setup
    cache.run("features", {"data": "abc"}, [out], stage, result_type=FeaturesResult)
    cache.run("features", {"data": "abd"}, [out], stage, result_type=FeaturesResult)
    assert stage.calls == 2 and cache.misses["features"] == "inputs, settings or code changed"


def test_touched_or_deleted_outputs_run_the_stage_again(setup) -> None:
    cache, stage, out = setup
    cache.run("features", {"data": "abc"}, [out], stage, result_type=FeaturesResult)
    target = out / "table.parquet"
    os.utime(target, ns=(1, 1))  # same bytes, another writer's mtime
    cache.run("features", {"data": "abc"}, [out], stage, result_type=FeaturesResult)
    assert stage.calls == 2 and cache.misses["features"] == "its output files changed since"
    target.unlink()
    cache.run("features", {"data": "abc"}, [out], stage, result_type=FeaturesResult)
    assert stage.calls == 3


def test_a_failing_stage_leaves_no_marker(setup) -> None:
    cache, stage, out = setup
    cache.run("features", {"data": "abc"}, [out], stage, result_type=FeaturesResult)

    def broken() -> dict:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        cache.run("features", {"data": "new"}, [out], broken, result_type=FeaturesResult)
    assert not cache.marker("features").exists()


def test_disabled_cache_and_reuse_off_always_run(setup, tmp_path: Path) -> None:
    cache, stage, out = setup
    off = StageCache(tmp_path / "markers", DAY, enabled=False)
    off.run("features", {"data": "abc"}, [out], stage, result_type=FeaturesResult)
    off.run("features", {"data": "abc"}, [out], stage, result_type=FeaturesResult)
    assert stage.calls == 2 and not off.marker("features").exists()
    cache.run("toy-model", {"f": 1}, [out], stage, reuse=False)
    assert cache.marker("toy-model").exists()  # recorded for a later run that reuses
    cache.run("toy-model", {"f": 1}, [out], stage)
    assert stage.calls == 3  # reused now


def test_still_valid_can_veto_a_hit(setup) -> None:
    cache, stage, out = setup
    cache.run("toy-model", {"f": 1}, [out], stage)
    cache.run("toy-model", {"f": 1}, [out], stage, still_valid=lambda result: False)
    assert stage.calls == 2 and cache.misses["toy-model"] == "what it refers to is gone"


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
    def data_key(path: Path) -> str:
        config = IngestConfig.model_validate({"source": "files", "files": {"path": str(path)}})
        return ingest_parts(config, DAY, False, tmp_path)["data"]

    data = tmp_path / "events.csv"
    data.write_text("user_id,item_id\nu1,i1\n")
    first = data_key(data)
    data.write_text("user_id,item_id\nu1,i1\n")  # same bytes, new modification time
    assert data_key(data) == first
    data.write_text("user_id,item_id\nu1,i2\n")  # same name, other content
    changed = data_key(data)
    assert changed != first
    renamed = data.rename(tmp_path / "export-2026-03-02.csv")  # other name, same content
    assert data_key(renamed) == changed
    demo = IngestConfig()
    assert ingest_parts(demo, DAY, False, tmp_path) != ingest_parts(
        demo, date(2026, 3, 3), False, tmp_path
    )


# -- damaged markers: a miss with a reason, never a crash ---------------------------------
def _edit_result(marker: dict) -> None:
    marker["result"]["n_train"] = "3"  # well-formed JSON, wrong type


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda m: m.update(result=["features"]), "marker unreadable or invalid (result:"),
        (
            lambda m: m["result"].pop("n_valid"),
            "lacks what features needs (n_valid: Field required",
        ),
        (_edit_result, "lacks what features needs (n_train: Input should be a valid integer"),
        (lambda m: m.update(relative_paths=[["gone"]]), "no value at ['gone']"),
        (lambda m: m.update(comment="edited by hand"), "comment: Extra inputs are not permitted"),
        (lambda m: m.pop("format"), "format: Field required"),
        (None, "marker unreadable or invalid (Expecting property name"),
    ],
)
def test_a_damaged_marker_reruns_the_stage(setup, caplog, damage, why) -> None:
    cache, stage, out = setup
    cache.run("features", {"data": "abc"}, [out], stage, result_type=FeaturesResult)
    path = cache.marker("features")
    if damage is None:
        path.write_text("{not json")
    else:
        marker = json.loads(path.read_text())
        damage(marker)
        path.write_text(json.dumps(marker))
    with caplog.at_level(logging.WARNING, logger="tasks.storage.cache"):
        result = cache.run("features", {"data": "abc"}, [out], stage, result_type=FeaturesResult)
    assert stage.calls == 2 and why in cache.misses["features"], cache.misses
    assert str(path) in caplog.text and "runs again" in caplog.text
    assert result.n_train == 3 and result.features_dir == str(out)
    cache.run(
        "features", {"data": "abc"}, [out], stage, result_type=FeaturesResult
    )  # the fresh marker serves again
    assert stage.calls == 2 and "features" in cache.hits


def test_a_model_result_with_a_nan_metric_is_reused(setup) -> None:
    cache, _, out = setup
    trained = ModelResult(
        model="ease",
        run_id="abc123",
        model_uri="models:/m-1",
        bundle_dir=str(out / "ease"),
        train_seconds=1.5,
        metrics={"ndcg@10": 0.25, "coverage": float("nan")},
    )
    calls = []

    def run() -> ModelResult:
        calls.append(1)
        return trained

    cache.run("train-ease", {"f": 1}, [out], run, result_type=ModelResult)
    again = cache.run("train-ease", {"f": 1}, [out], run, result_type=ModelResult)
    assert calls == [1] and again.bundle_dir == trained.bundle_dir
    assert math.isnan(again.metrics["coverage"])


# -- a moved workspace keeps its markers ---------------------------------------------------
def test_paths_in_a_result_are_stored_relative_to_the_root(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    result = {
        "interactions_path": str(root / "raw" / "interactions.parquet"),
        "items_path": None,
        "files_ingested": [str(root / "landing" / "a.csv"), "/elsewhere/b.csv"],
        "stats": {"note": "raw/x", "dir": str(root)},
    }
    stored, locations = to_relative(result, root)
    assert stored["interactions_path"] == "raw/interactions.parquet"
    assert stored["files_ingested"] == ["landing/a.csv", "/elsewhere/b.csv"]
    assert stored["stats"] == {"note": "raw/x", "dir": "."}
    assert locations == [["interactions_path"], ["files_ingested", 0], ["stats", "dir"]]
    moved = tmp_path / "moved"
    back = resolve_paths(stored, locations, moved)
    assert back["interactions_path"] == str(moved / "raw" / "interactions.parquet")
    assert back["files_ingested"][1] == "/elsewhere/b.csv" and back["stats"]["note"] == "raw/x"


def test_a_copied_workspace_reuses_its_markers(tmp_path: Path) -> None:
    first = Workspace.at(tmp_path / "first")
    validated = first.validated(DAY) / "interactions.parquet"
    validated.write_bytes(b"accepted rows")

    def run_features(ws: Workspace, stage: Stage) -> dict:
        cache = StageCache(ws.stage_markers, DAY, flow_run_id="run-1")  # as flows/night.py
        parts = features_parts(str(ws.validated(DAY) / "interactions.parquet"), FeatureConfig())
        result = cache.run("features", parts, [ws.features(DAY)], stage, result_type=FeaturesResult)
        return {"result": result, "hits": cache.hits, "misses": cache.misses}

    run_features(first, Stage(first.features(DAY)))
    marker = first.stage_markers / "features-2026-03-02.json"
    assert str(first.root) not in marker.read_text()

    shutil.copytree(first.root, tmp_path / "second")  # copies file times too (copy2)
    shutil.rmtree(first.root)
    second = Workspace.at(tmp_path / "second")
    stage = Stage(second.features(DAY))
    reused = run_features(second, stage)
    assert stage.calls == 0 and reused["hits"] == {"features": "run-1"}, reused["misses"]
    assert reused["result"].features_dir == str(second.features(DAY))


def test_the_code_version_covers_every_source_of_the_stages() -> None:
    from tasks.storage.cache import code_files

    names = {name for name, _ in code_files()}
    assert {"tasks/publish.py", "tasks/storage/cache.py", "models/ease.py"} <= names
    assert "expectations/interactions.py" in names
