"""What MLflow's UI is told about recpipe's runs: the experiment's kind and runs view, the
data snapshot as a dataset input, links, and the Prefect flow run on the parent run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tasks import tracking
from tasks.storage.workspace import Workspace
from tasks.tracking import ui

DATA_TAGS = {
    "data.n_train": "120",
    "data.n_valid": "30",
    "data.first_event": "2026-01-01T00:00:00+00:00",
    "data.last_event": "2026-02-01T00:00:00+00:00",
    "run_date": "2026-02-01",
    "prefect.flow_run_id": "f-1",
}


@pytest.fixture()
def store(tmp_path: Path):
    ws = Workspace.at(tmp_path / "ws")
    return ws, tracking.client_for(ws)


def view_of(client, experiment_id: str) -> dict:
    tag = client.get_experiment(experiment_id).tags[ui.SHARED_VIEW_PREFIX + ui.VIEW_KEY]
    envelope = json.loads(tag)
    assert {"name", "createdAt", "updatedAt", "state"} <= set(envelope)  # the UI's format
    return json.loads(envelope["state"])


def test_a_new_and_a_reused_experiment_open_on_the_runs_view(store) -> None:
    ws, client = store
    new = tracking.ensure_experiment(client, ws, "fresh")
    old = client.create_experiment("made-elsewhere")  # an experiment recpipe did not create
    assert tracking.ensure_experiment(client, ws, "made-elsewhere") == old
    for experiment_id in (new, old):
        tags = client.get_experiment(experiment_id).tags
        assert tags["mlflow.experimentKind"] == "custom_model_development"
        view = view_of(client, experiment_id)
        assert "metrics.`ndcg_at_10`" in view["selectedColumns"]
        # the metrics first, beside the run names; the wide dataset and model columns after
        assert view["columnOrder"][0] == "metrics.`ndcg_at_10`"
        assert view["columnOrder"][-2:] == ["attributes.`Dataset`", "attributes.`Models`"]
        assert view["groupBy"]["groupByKeys"] == [{"mode": "tag", "groupByData": "run_date"}]
    assert tracking.ensure_experiment(client, ws, "fresh") == new  # idempotent


def test_the_view_follows_the_metrics_evaluate_logged(store) -> None:
    ws, client = store
    experiment_id = tracking.ensure_experiment(client, ws, "k5")
    metrics = ["ndcg@5", "recall@5", "hit@5", "coverage@5", "n_users", "scoring_seconds"]
    ui.set_runs_view(client, experiment_id, metrics)
    columns = view_of(client, experiment_id)["selectedColumns"]
    assert [c for c in columns if c.startswith("metrics.")] == [
        "metrics.`ndcg_at_5`",
        "metrics.`recall_at_5`",
        "metrics.`hit_at_5`",
        "metrics.`coverage_at_5`",
        "metrics.`train_seconds`",
    ]
    before = client.get_experiment(experiment_id).tags[ui.SHARED_VIEW_PREFIX + ui.VIEW_KEY]
    ui.set_runs_view(client, experiment_id, metrics)  # unchanged: not rewritten
    after = client.get_experiment(experiment_id).tags[ui.SHARED_VIEW_PREFIX + ui.VIEW_KEY]
    assert after == before


def test_the_feature_snapshot_is_the_runs_dataset_input(store, tmp_path: Path) -> None:
    ws, client = store
    features = tmp_path / "features" / "run_date=2026-02-01"
    (features / "train.parquet").mkdir(parents=True)
    frame = pd.DataFrame(
        {
            "user_idx": [0, 1],
            "item_idx": [1, 0],
            "timestamp": pd.to_datetime(["2026-01-02", "2026-01-03"], utc=True),
            "value": [1.0, 2.0],
        }
    )
    frame.to_parquet(features / "train.parquet" / "part-00000.parquet", index=False)
    (features / "meta.json").write_text(json.dumps({"n_users": 2, "n_items": 2, "n_train": 2}))
    digest = tracking.fingerprint(features)
    experiment_id = tracking.ensure_experiment(client, ws, "data")
    run_id = tracking.start_parent_run(client, experiment_id, "nightly", {})

    dataset = tracking.snapshot_dataset(features, {"data.fingerprint": digest, **DATA_TAGS})
    tracking.log_dataset(client, run_id, dataset)
    tracking.log_dataset(client, run_id, dataset)  # a second model's run: still one input

    inputs = client.get_run(run_id).inputs.dataset_inputs
    assert len(inputs) == 1
    logged = inputs[0].dataset
    assert logged.name == "features-2026-02-01"
    assert digest.startswith(logged.digest) and len(logged.digest) <= 36  # MLflow's limit
    assert json.loads(logged.source) == {"uri": features.resolve().as_uri()}
    profile = json.loads(logged.profile)
    assert profile["fingerprint"] == digest
    assert (profile["n_train"], profile["n_valid"], profile["n_users"]) == (2, 30, 2)
    assert profile["first_event"] == DATA_TAGS["data.first_event"]
    schema = {c["name"]: c["type"] for c in json.loads(logged.schema)["mlflow_colspec"]}
    assert schema == {
        "user_idx": "long",
        "item_idx": "long",
        "timestamp": "datetime",
        "value": "double",
    }
    assert {t.key: t.value for t in inputs[0].tags} == {"mlflow.data.context": "training"}


def test_the_parent_run_links_the_prefect_flow_run_when_the_ui_is_known(store) -> None:
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

    ws, client = store
    experiment_id = tracking.ensure_experiment(client, ws, "links")
    with temporary_settings({PREFECT_UI_URL: "http://prefect.example:4200"}):
        run_id = tracking.start_parent_run(
            client, experiment_id, "nightly", {"prefect.flow_run_id": "abc-123"}
        )
    tags = client.get_run(run_id).data.tags
    assert tags["prefect.flow_run_url"] == "http://prefect.example:4200/runs/flow-run/abc-123"

    # no UI address, and no server's API address to derive one from (a test session's
    # Prefect harness sets one)
    with temporary_settings(restore_defaults={PREFECT_UI_URL, PREFECT_API_URL}):
        plain = tracking.start_parent_run(
            client, experiment_id, "nightly", {"prefect.flow_run_id": "abc-124"}
        )
    assert "prefect.flow_run_url" not in client.get_run(plain).data.tags


def test_links_carry_the_parameters_that_open_the_runs_view(monkeypatch) -> None:
    url = ui.experiment_url("http://127.0.0.1:5000/", "7")
    assert url == (
        "http://127.0.0.1:5000/#/experiments/7/runs"
        "?workflowType=machine_learning&viewStateShareKey=recpipe"
    )
    assert ui.run_url("http://h", "7", "r1").endswith(
        "/#/experiments/7/runs/r1?" + ui.WORKFLOW_PARAM
    )
    monkeypatch.delenv("MLFLOW_UI_URL", raising=False)
    assert ui.mlflow_ui_url("sqlite:////tmp/mlflow.db") is None
    assert ui.mlflow_ui_url("http://tracking:5000/") == "http://tracking:5000"
    monkeypatch.setenv("MLFLOW_UI_URL", "http://ui:5000/")
    assert ui.mlflow_ui_url("sqlite:////tmp/mlflow.db") == "http://ui:5000"
