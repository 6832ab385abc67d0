"""The MLflow store guard: damaged stores are refused by name, healthy ones backed up."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from tasks import tracking
from tasks.errors import RecpipeError, StoreError
from tasks.storage.workspace import Workspace
from tasks.tracking import runs
from tasks.tracking.store import backups_dir, list_backups, store_path


@pytest.fixture(scope="module")
def real_store(tmp_path_factory) -> Path:
    """A store made by MLflow itself: one experiment, one run, one registered model."""
    ws = Workspace.at(tmp_path_factory.mktemp("made-by-mlflow"))
    client = tracking.client_for(ws)
    experiment_id = tracking.ensure_experiment(client, ws, "recpipe")
    run_id = tracking.start_parent_run(client, experiment_id, "nightly-2026-03-02", {})
    tracking.log_metrics(client, run_id, {"ndcg@10": 0.25})
    client.create_registered_model("recpipe-recommender")
    return store_path(ws)


def workspace(tmp_path: Path, store: Path | None = None, published: bool = False) -> Workspace:
    ws = Workspace.at(tmp_path / "ws")
    if store is not None:
        shutil.copyfile(store, store_path(ws))
    if published:
        with sqlite3.connect(ws.database_path) as con:
            con.execute("CREATE TABLE recommendations (user_id TEXT, item_id TEXT, rank INT)")
            con.execute("INSERT INTO recommendations VALUES ('u1', 'i1', 1)")
        con.close()
    return ws


def truncate_to_half(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def test_store_error_is_a_recpipe_error() -> None:
    assert issubclass(StoreError, RecpipeError)


def test_empty_store_with_published_output_is_refused(tmp_path: Path, real_store: Path) -> None:
    ws = workspace(tmp_path, real_store, published=True)
    backup = tracking.guard_store(ws)  # a healthy night first: its backup is the way back
    store_path(ws).write_bytes(b"")
    with pytest.raises(StoreError) as caught:
        tracking.guard_store(ws)
    message = str(caught.value)
    assert f"MLflow store {store_path(ws)} is empty (0 bytes)" in message
    assert "table 'recommendations'" in message and "collide with the model_version" in message
    assert "stopped before writing anything" in message
    assert f"cp {backup} {store_path(ws)}" in message
    assert "\n" not in message  # the CLI prints it as its one failure line
    # the clients MLflow would hand out refuse it too, and nothing was written
    with pytest.raises(StoreError, match="is empty"):
        tracking.client_for(ws)
    assert store_path(ws).stat().st_size == 0
    assert list_backups(backups_dir(ws)) == [backup]
    # the restore the message gives brings the history back
    shutil.move(store_path(ws), f"{store_path(ws)}.damaged")
    shutil.copyfile(backup, store_path(ws))
    client = tracking.client_for(ws)
    assert client.get_registered_model("recpipe-recommender").name == "recpipe-recommender"


def test_published_parquet_counts_as_output(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    store_path(ws).write_bytes(b"")
    staging = ws.tables / "recommendations" / ".staging-2026-03-02-abcd"
    staging.mkdir(parents=True)
    (staging / "part-0.parquet").write_bytes(b"PAR1")
    assert not tracking.has_published_output(ws)  # a staging folder is not published
    partition = ws.tables / "recommendations" / "run_date=2026-03-02"
    partition.mkdir()
    (partition / "part-0.parquet").write_bytes(b"PAR1")
    assert tracking.has_published_output(ws)
    with pytest.raises(StoreError, match="no backup in"):
        tracking.guard_store(ws)


def test_truncated_store_is_refused_by_name(tmp_path: Path, real_store: Path) -> None:
    ws = workspace(tmp_path, real_store, published=True)
    truncate_to_half(store_path(ws))
    with pytest.raises(StoreError, match="is damaged") as caught:
        tracking.guard_store(ws)
    assert str(store_path(ws)) in str(caught.value)
    with pytest.raises(StoreError, match="database disk image is malformed"):
        tracking.client_for(ws)


def test_client_for_names_the_file_when_mlflow_itself_fails(
    tmp_path: Path, real_store: Path, monkeypatch
) -> None:
    ws = workspace(tmp_path, real_store)
    truncate_to_half(store_path(ws))
    monkeypatch.setattr(runs, "check_store", lambda ws: True)  # MLflow opens it first
    with pytest.raises(StoreError, match="database disk image is malformed") as caught:
        tracking.client_for(ws)
    assert str(store_path(ws)) in str(caught.value)


def test_truncated_store_is_refused_even_before_anything_was_published(
    tmp_path: Path, real_store: Path
) -> None:
    ws = workspace(tmp_path, real_store)
    truncate_to_half(store_path(ws))
    with pytest.raises(StoreError, match="is damaged"):
        tracking.guard_store(ws)


def test_a_store_without_mlflow_tables_is_refused(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    with sqlite3.connect(store_path(ws)) as con:
        con.execute("CREATE TABLE experiments (id INT)")
    con.close()
    with pytest.raises(StoreError, match=r"lacks MLflow's tables \['alembic_version'"):
        tracking.guard_store(ws)


def test_page_damage_only_the_integrity_check_sees_is_refused(
    tmp_path: Path, real_store: Path
) -> None:
    ws = workspace(tmp_path, real_store, published=True)
    first = tracking.guard_store(ws)
    with sqlite3.connect(store_path(ws)) as con:
        page_size = con.execute("PRAGMA page_size").fetchone()[0]
        root = con.execute("SELECT rootpage FROM sqlite_master WHERE name='metrics'").fetchone()
    con.close()
    with open(store_path(ws), "r+b") as handle:  # scribble over the metrics table's root page
        handle.seek((root[0] - 1) * page_size)
        handle.write(b"\xff" * page_size)
    tracking.client_for(ws)  # the cheap check reads only the schema: it passes
    with pytest.raises(StoreError, match=r"is damaged|fails PRAGMA integrity_check") as caught:
        tracking.guard_store(ws)
    assert first.name in str(caught.value)
    assert list_backups(backups_dir(ws)) == [first]  # the damaged copy is not kept


def test_empty_store_with_nothing_published_is_a_first_run(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    store_path(ws).write_bytes(b"")
    assert tracking.guard_store(ws) is None
    client = tracking.client_for(ws)  # MLflow creates its tables in the empty file
    assert tracking.ensure_experiment(client, ws, "recpipe")
    assert tracking.guard_store(ws) is not None  # from now on it is backed up


def test_missing_store_with_published_output_warns(tmp_path: Path, caplog) -> None:
    ws = workspace(tmp_path, published=True)
    with caplog.at_level(logging.WARNING, logger="tasks.tracking.store"):
        assert tracking.guard_store(ws) is None
    assert "does not exist although table 'recommendations'" in caplog.text


def test_backups_are_real_copies_pruned_to_the_newest_n(tmp_path: Path, real_store: Path) -> None:
    ws = workspace(tmp_path, real_store, published=True)
    made = [tracking.guard_store(ws, keep=2) for _ in range(4)]
    assert len(set(made)) == 4  # unique names, even within one second
    kept = list_backups(backups_dir(ws))
    assert kept == made[-2:]
    assert not list(backups_dir(ws).glob(".*.tmp"))
    with sqlite3.connect(kept[-1]) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        names = {row[0] for row in con.execute("SELECT name FROM registered_models")}
        runs = con.execute("SELECT name FROM runs").fetchall()
    con.close()
    assert names == {"recpipe-recommender"} and runs == [("nightly-2026-03-02",)]
