"""The intraday refresh end to end, on a small published night (demo data, EASE champion,
real GX, MLflow, SQLite and Delta): new events in the landing folder change just their
users' rows, as a full scoring of the same histories would."""

from __future__ import annotations

import threading
import uuid
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tests.conftest import run_command

RUN_DATE = date(2026, 3, 2)
K = 5


@pytest.fixture(scope="module")
def night(prefect_harness, tmp_path_factory, make_config):
    from flows.nightly import nightly

    workspace = tmp_path_factory.mktemp("refresh-ws")
    landing = workspace / "landing"
    landing.mkdir()
    config = make_config(
        workspace,
        train={"models": ["ease"]},
        score={"k": K},
        refresh={"path": str(landing), "wait_seconds": 120},
    )
    state = nightly(config=config, run_date=RUN_DATE, return_state=True)
    assert state.is_completed(), state
    return config


def drop(config, events: list[tuple[str, str]], minutes: int = 1) -> pd.DataFrame:
    """A landing file of events (user, item), just after the night's data."""
    start = pd.Timestamp(RUN_DATE, tz="UTC") + pd.Timedelta(minutes=minutes)
    frame = pd.DataFrame(
        {
            "user_id": [u for u, _ in events],
            "item_id": [i for _, i in events],
            "timestamp": [start + pd.Timedelta(seconds=n) for n in range(len(events))],
        }
    )
    frame.to_csv(config.refresh.path / f"drop-{uuid.uuid4().hex[:8]}.csv", index=False)
    return frame


def refresh(config, **kwargs) -> dict:
    from tasks.refresh.run import run_refresh

    return run_refresh(config, f"test-{uuid.uuid4().hex[:8]}", today=RUN_DATE, **kwargs)


def database_rows(config) -> pd.DataFrame:
    from tasks.storage import database as db
    from tasks.storage.workspace import Workspace

    url = config.publish.url(Workspace.at(config.workspace).database_url)
    frame = db.read_table(url, config.publish.table, RUN_DATE)
    return frame.sort_values(["user_id", "rank"]).reset_index(drop=True)


def lake_rows(config) -> pd.DataFrame:
    from tasks.storage import lake

    frame = lake.read_table(config.workspace / "tables" / config.publish.table, RUN_DATE)
    return frame.sort_values(["user_id", "rank"]).reset_index(drop=True)


def validated(config) -> pd.DataFrame:
    path = config.workspace / "validated" / f"run_date={RUN_DATE}" / "interactions.parquet"
    return pd.read_parquet(path)


def personal_users(config, n: int, offset: int) -> list[str]:
    rows = database_rows(config)
    users = sorted(rows.loc[rows["strategy"] == "personal", "user_id"].unique())
    return users[offset : offset + n]


def full_scoring(config, history: pd.DataFrame) -> pd.DataFrame:
    """The nightly's scoring of every user of ``history`` (tasks/scoring/table.write_scores, as
    each shard of the night runs it) with the champion and the night's item statistics."""
    from tasks.refresh.rescore import champion
    from tasks.scoring.table import scoring_catalog, write_scores

    wrapper, version = champion(config.workspace, config.tracking.registered_model)
    scores = config.workspace / "scores" / f"run_date={RUN_DATE}"
    raw_items = config.workspace / "raw" / f"ingest_date={RUN_DATE}" / "items.parquet"
    out = config.workspace / f"expected-{uuid.uuid4().hex[:6]}.parquet"
    write_scores(
        wrapper.model,
        wrapper.users,
        wrapper.items,
        scoring_catalog(wrapper.items, str(raw_items), config.score),
        history,
        config.score,
        out,
        {"run_id": "x", "run_date": RUN_DATE, "model_version": version},
        newest=pd.to_datetime(history["timestamp"], utc=True).max(),
        popularity=np.load(scores / "recent_popularity.npy"),
        similarity=sp.load_npz(scores / "similarity.npz"),
    )
    return pd.read_parquet(out)


COMPARED = ["user_id", "rank", "item_id", "score", "strategy", "reason", "model_version"]


def test_new_events_give_the_list_a_full_scoring_of_the_same_histories_gives(night) -> None:
    config = night
    users = personal_users(config, 2, offset=0)
    before = database_rows(config)
    # each user acts on their own top 3: those become seen, so the list must change
    tops = {u: before.loc[before["user_id"] == u, "item_id"].tolist()[:3] for u in users}
    new = drop(config, [(u, item) for u in users for item in tops[u]])

    out = refresh(config)

    assert out["status"] == "published" and out["users"] == 2 and out["events"] == 6
    history = pd.concat([validated(config)[new.columns], new], ignore_index=True)
    expected = full_scoring(config, history)
    expected = expected[expected["user_id"].isin(users)].sort_values(["user_id", "rank"])
    expected = expected[COMPARED].reset_index(drop=True)
    for rows in (database_rows(config), lake_rows(config)):
        got = rows[rows["user_id"].isin(users)].reset_index(drop=True)
        assert set(got["run_id"]) == {out["run_id"]}
        for u in users:
            assert not set(tops[u]) & set(got.loc[got["user_id"] == u, "item_id"])
        got = got[COMPARED].astype(object).where(got[COMPARED].notna(), None)
        want = expected.astype(object).where(expected.notna(), None)
        pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_users_without_new_events_keep_their_rows_byte_identical(night) -> None:
    config = night
    [user] = personal_users(config, 1, offset=4)
    before_db, before_lake = database_rows(config), lake_rows(config)
    item = before_db.loc[before_db["user_id"] == user, "item_id"].iloc[0]
    drop(config, [(user, item)])

    out = refresh(config)

    assert out["status"] == "published" and out["users"] == 1
    for before, after in ((before_db, database_rows(config)), (before_lake, lake_rows(config))):
        keep = before[before["user_id"] != user].reset_index(drop=True)
        now = after[after["user_id"] != user].reset_index(drop=True)
        pd.testing.assert_frame_equal(now, keep)
        assert not after.loc[after["user_id"] == user, "item_id"].isin([item]).any()


def test_a_new_user_gets_cold_start_rows(night) -> None:
    config = night
    known = validated(config)["item_id"].value_counts().index[:2].tolist()
    drop(config, [("newcomer-1", known[0]), ("newcomer-1", known[1])])

    out = refresh(config)

    assert out["status"] == "published" and out["users_by_strategy"] == {"cold_start": 1}
    for rows in (database_rows(config), lake_rows(config)):
        mine = rows[rows["user_id"] == "newcomer-1"]
        assert mine["rank"].tolist() == list(range(1, K + 1))
        assert set(mine["strategy"]) == {"cold_start"}
        assert not mine["item_id"].isin(known).any()
        assert mine["refreshed_at"].notna().all()


def test_bad_events_are_quarantined_and_a_bad_batch_publishes_nothing(night) -> None:
    from tasks.errors import DataValidationError

    config = night
    [user] = personal_users(config, 1, offset=6)
    items = validated(config)["item_id"].unique()[:25].tolist()
    drop(config, [(user, item) for item in items] + [(user, "no-such-item")])

    out = refresh(config)

    assert out["validation"]["rows_quarantined"] == 1
    assert out["validation"]["rows_accepted"] == 25
    assert out["status"] == "published" and out["users"] == 1
    before = database_rows(config)
    drop(config, [("someone", "no-such-item")])  # 100 % quarantined: over the share
    with pytest.raises(DataValidationError):
        refresh(config)
    pd.testing.assert_frame_equal(database_rows(config), before)


def hold_the_nightly_lock(config, release: threading.Event, held: threading.Event):
    from tasks.storage.locks import holder_info, run_lock

    def hold() -> None:
        with run_lock(config.workspace / "locks", RUN_DATE, 0, holder_info("nightly-test")):
            held.set()
            release.wait(120)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert held.wait(60), "the test could not take the date's lock"
    return thread


def test_a_refresh_skips_while_the_nightly_of_its_date_runs(night) -> None:
    config = night
    skipping = config.model_copy(
        update={"refresh": config.refresh.model_copy(update={"when_nightly_running": "skip"})}
    )
    [user] = personal_users(config, 1, offset=8)
    before = database_rows(config)
    drop(config, [(user, before.loc[before["user_id"] == user, "item_id"].iloc[0])])
    release, held = threading.Event(), threading.Event()
    thread = hold_the_nightly_lock(config, release, held)
    try:
        out = refresh(skipping)
    finally:
        release.set()
        thread.join(60)

    assert out["status"] == "skipped" and "a recpipe run for 2026-03-02" in out["reason"]
    pd.testing.assert_frame_equal(database_rows(config), before)
    later = refresh(config)  # the file was left for the next refresh
    assert later["status"] == "published" and later["users"] == 1


def test_a_refresh_waits_behind_the_nightly_of_its_date(night) -> None:
    config = night
    [user] = personal_users(config, 1, offset=10)
    before = database_rows(config)
    drop(config, [(user, before.loc[before["user_id"] == user, "item_id"].iloc[0])])
    release, held, waiting = threading.Event(), threading.Event(), threading.Event()
    thread = hold_the_nightly_lock(config, release, held)
    result: dict = {}
    worker = threading.Thread(
        target=lambda: result.update(refresh(config, on_wait=lambda why: waiting.set())),
        daemon=True,
    )
    try:
        worker.start()
        assert waiting.wait(60), "the refresh did not queue behind the lock"
        assert not result  # still waiting while the nightly holds the date
        pd.testing.assert_frame_equal(database_rows(config), before)
    finally:
        release.set()
        thread.join(60)
    worker.join(120)
    assert result["status"] == "published" and result["users"] == 1


def test_the_flow_publishes_and_reports_on_the_nights_mlflow_run(night) -> None:
    from mlflow.tracking import MlflowClient

    from flows.refresh import refresh as refresh_flow
    from tasks.storage.workspace import Workspace

    config = night
    [user] = personal_users(config, 1, offset=12)
    drop(config, [("newcomer-2", database_rows(config)["item_id"].iloc[0]), (user, "i00001")])

    out = refresh_flow(config=config)

    assert out["status"] == "published" and out["users"] >= 1
    assert out["arrival_to_published_seconds"] is not None and out["artifact"] is True
    uri = Workspace.at(config.workspace).mlflow_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = client.get_run(out["mlflow_run_id"])
    assert run.info.run_name == f"nightly-{RUN_DATE}"
    assert client.get_metric_history(run.info.run_id, "refresh.users")
    assert (date.fromisoformat(out["run_date"]) - RUN_DATE) == timedelta(0)


def test_serve_schedules_the_refresh_only_with_a_landing_folder(tmp_path) -> None:
    from flows.operate import refresh_deployment
    from tasks.config import load_config

    def config(**refresh):
        return load_config(overrides={"workspace": str(tmp_path), "refresh": refresh}, environ={})

    assert refresh_deployment(config(), {}) is None  # demo source, no refresh.path
    assert refresh_deployment(config(path=str(tmp_path), serve=False), {}) is None
    every = refresh_deployment(config(path=str(tmp_path), interval_minutes=2), {})
    assert every.name == "recpipe-refresh" and every.concurrency_limit == 1
    assert every.schedules[0].schedule.interval == timedelta(minutes=2)
    cron = refresh_deployment(config(path=str(tmp_path), cron="*/10 6-22 * * *"), {})
    assert cron.schedules[0].schedule.cron == "*/10 6-22 * * *"


def test_recpipe_refresh_runs_without_a_prefect_server(night) -> None:
    import os
    import sys
    from pathlib import Path

    config = night
    [user] = personal_users(config, 1, offset=14)
    drop(
        config, [(user, database_rows(config).loc[lambda r: r["user_id"] == user].item_id.iloc[0])]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "RECPIPE"))}
    done = run_command(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "--workspace",
            str(config.workspace),
            "refresh",
            "--path",
            str(config.refresh.path),
            "--no-prefect",
        ],
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "refresh published for run date 2026-03-02" in done.stdout
    assert "users refreshed 1 " in done.stdout
    assert "temporary server" not in done.stdout + done.stderr  # no Prefect server started
