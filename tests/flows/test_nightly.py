"""End to end: the nightly flow on a small demo dataset, on real Prefect, GX, MLflow, SQLite."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

RUN_DATE = date(2026, 3, 2)
K = 5


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="session")
def nightly_run(prefect_harness, tmp_path_factory):
    from flows.nightly import nightly
    from tasks.config import load_config

    workspace = tmp_path_factory.mktemp("workspace")
    config = load_config(
        overrides={
            "workspace": str(workspace),
            "ingest": {"demo": {"n_users": 300, "n_items": 200, "mean_interactions": 20}},
            "train": {"mult_dae": {"epochs": 5, "hidden_dim": 32}},
            "score": {"k": K},
        },
        environ={},
    )
    state = nightly(config=config, run_date=RUN_DATE, return_state=True)
    return config, state


def test_flow_run_completed(nightly_run) -> None:
    _, state = nightly_run
    assert state.is_completed(), state


def test_every_user_gets_k_distinct_unseen_known_items(nightly_run) -> None:
    from tasks.features import load_features
    from tasks.publish import read_parquet_table
    from tasks.workspace import Workspace

    config, state = nightly_run
    summary = state.result()
    ws = Workspace.at(config.workspace)
    recs = read_parquet_table(ws.tables / "recommendations", RUN_DATE)
    raw = pd.read_parquet(summary["ingest"]["interactions_path"])
    features = load_features(summary["features"]["features_dir"])

    assert set(recs["user_id"]) == set(raw["user_id"])  # every user scored
    sizes = recs.groupby("user_id").size()
    assert (sizes == K).all()
    for _, group in recs.groupby("user_id"):
        assert sorted(group["rank"]) == list(range(1, K + 1))
        assert group["item_id"].is_unique
        ordered = group.sort_values("rank")["score"].to_numpy()
        assert np.all(np.diff(ordered) <= 1e-9)
    assert set(recs["item_id"]) <= set(raw["item_id"])
    train = features.train.assign(
        user_id=features.users.raw(features.train["user_idx"]),
        item_id=features.items.raw(features.train["item_idx"]),
    )
    seen = set(zip(train["user_id"], train["item_id"]))
    assert not [pair for pair in zip(recs["user_id"], recs["item_id"]) if pair in seen]
    assert set(recs["run_id"]) == {summary["run_id"]}
    assert set(recs["strategy"]) == {"personal"} or set(recs["strategy"]) == {"fallback"}


def test_mlflow_store_has_runs_metrics_and_champion(nightly_run) -> None:
    from mlflow.tracking import MlflowClient

    from tasks.workspace import Workspace

    config, state = nightly_run
    summary = state.result()
    client = MlflowClient(
        tracking_uri=Workspace.at(config.workspace).mlflow_uri,
        registry_uri=Workspace.at(config.workspace).mlflow_uri,
    )
    parent = client.get_run(summary["mlflow_parent_run_id"])
    assert parent.info.status == "FINISHED"
    for model in summary["models"]:
        run = client.get_run(model["run_id"])
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert 0.0 <= run.data.metrics["ndcg_at_10"] <= 1.0
        assert 0.0 <= run.data.metrics["recall_at_10"] <= 1.0
    dae = next(m for m in summary["models"] if m["model"] == "mult_dae")
    history = client.get_metric_history(dae["run_id"], "epoch_loss")
    assert [m.step for m in history] == list(range(5))
    champion = client.get_model_version_by_alias(config.tracking.registered_model, "champion")
    assert str(champion.version) == summary["champion"]["version"]
    assert champion.run_id == next(
        m["run_id"] for m in summary["models"] if m["model"] == summary["champion"]["model"]
    )


def test_sqlite_table_and_parquet_hold_the_same_rows(nightly_run) -> None:
    from tasks.publish import read_database_table, read_parquet_table
    from tasks.workspace import Workspace

    config, _ = nightly_run
    ws = Workspace.at(config.workspace)
    parquet = read_parquet_table(ws.tables / "recommendations", RUN_DATE)
    database = read_database_table(ws.database_url, "recommendations", RUN_DATE)
    cols = [
        "run_id",
        "user_id",
        "rank",
        "item_id",
        "score",
        "model_name",
        "model_version",
        "strategy",
    ]
    a = parquet[cols].astype(object).sort_values(["user_id", "rank"]).reset_index(drop=True)
    b = database[cols].astype(object).sort_values(["user_id", "rank"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    assert set(database["run_date"]) == {RUN_DATE}


def test_validation_report_and_quarantine_written(nightly_run) -> None:
    from pathlib import Path

    _, state = nightly_run
    validation = state.result()["validation"]
    assert Path(validation["data_docs_index"]).is_file()
    assert Path(validation["quarantine_path"]).is_file()
    assert validation["rows_read"] == (
        validation["rows_accepted"]
        + validation["rows_quarantined"]
        + validation["duplicates_dropped"]
    )
