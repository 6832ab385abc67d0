"""The Prefect UI reads like the night: task runs named for what they do, the run summary
and a link to the MLflow parent run on the flow run, the Prefect flow run on the MLflow run.

A tiny flow runs the real stage tasks (ingest, validate, the feature partitions, train and
evaluate one model) on the test harness's API server; names and artifacts are read back
from that API. Every task's name template is also checked against its signature, with the
convention ``tests/flows/test_operations.py::task_run_names`` relies on: the task's name,
a dash, one dash-free word.
"""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import pytest

RUN_DATE = date(2026, 3, 2)


def resolved_name(task, **parameters) -> str:
    from prefect._internal.engine import resolve_custom_task_run_name

    return resolve_custom_task_run_name(task, parameters)


def test_each_task_names_its_runs_for_what_they_do() -> None:
    from tasks.evaluate import evaluate_task
    from tasks.features import encode_partition_task, partition_ids_task
    from tasks.ingest import ingest_task
    from tasks.score import score_shard_task
    from tasks.train import train_task
    from tasks.validate import validate_task

    cases = {
        "ingest-demo": resolved_name(ingest_task, config=SimpleNamespace(source="demo")),
        "ingest-movielens_100k": resolved_name(
            ingest_task, config=SimpleNamespace(source="movielens-100k")
        ),
        "validate-interactions": resolved_name(validate_task, raw_path="r", items_path=None),
        "validate-interactions+items+users": resolved_name(
            validate_task, items_path="i", users_path="u"
        ),
        "partition-ids-3": resolved_name(partition_ids_task, plan=None, part=3),
        "encode-partition-3": resolved_name(encode_partition_task, plan=None, part=3, cutoff=""),
        "train-mult_dae": resolved_name(train_task, name="mult_dae"),
        "evaluate-mult_dae": resolved_name(
            evaluate_task, trained=SimpleNamespace(model="mult_dae")
        ),
        "score-shard-12": resolved_name(score_shard_task, plan=None, shard=12),
    }
    assert {expected: got for expected, got in cases.items() if got != expected} == {}
    tasks = [ingest_task, validate_task, partition_ids_task, encode_partition_task]
    tasks += [train_task, evaluate_task, score_shard_task]
    by_task = dict(zip(cases.values(), tasks[:1] * 2 + tasks[1:2] * 2 + tasks[2:], strict=True))
    for name, task in by_task.items():
        assert name.rsplit("-", 1)[0] == task.name  # what task_run_names() maps it back to


def test_every_stage_function_the_night_calls_has_its_task() -> None:
    """flows.steps.AsTasks runs stage function ``f`` as ``f_task`` beside it."""
    from flows.steps import task_of
    from tasks import (
        check,
        evaluate,
        features,
        ingest,
        monitor,
        promote,
        publish,
        report,
        score,
        train,
        validate,
    )
    from tasks.data import as_of

    functions = [
        ingest.ingest, as_of.as_of, validate.validate, features.plan_features,
        features.partition_ids, features.write_vocabularies, features.encode_partition,
        features.finish_features, train.train, evaluate.evaluate, promote.promote,
        score.plan_scoring, score.score_shard, score.finish_scoring, check.check_output,
        monitor.monitor, publish.publish, report.report,
    ]  # fmt: skip
    from prefect import Task

    for fn in functions:
        task = task_of(fn)
        # the function itself, or a wrapper that adds the run's logger or artifacts
        assert isinstance(task, Task) and task.fn.__name__ in {fn.__name__, f"{fn.__name__}_task"}
    with pytest.raises(TypeError, match="has no Prefect task; expected load_source_task"):
        task_of(ingest.load_source)


@pytest.fixture(scope="module")
def tiny_night(prefect_harness, make_config, tmp_path_factory):
    """A flow run of the real stage tasks; its id, the workspace and the MLflow parent run."""
    from prefect import flow
    from prefect.runtime import flow_run

    from tasks import tracking
    from tasks.config import EvaluateConfig
    from tasks.data.as_of import cutoff
    from tasks.evaluate import evaluate_task
    from tasks.features import (
        encode_partition_task,
        finish_features_task,
        partition_ids_task,
        plan_features_task,
        write_vocabularies_task,
    )
    from tasks.ingest import ingest_task
    from tasks.report import publish_run_summary
    from tasks.storage.workspace import Workspace
    from tasks.train import train_task
    from tasks.validate import validate_task

    config = make_config(
        tmp_path_factory.mktemp("tiny-night"),
        features={"part_rows": 800},
    )
    ws = Workspace.at(config.workspace)

    @flow(name="tiny-night")
    def tiny() -> dict:
        raw = ingest_task(config.ingest, RUN_DATE, str(ws.raw(RUN_DATE)), str(ws.root))
        validated = validate_task(
            raw.interactions_path,
            str(ws.validated(RUN_DATE)),
            str(ws.validation_root),
            config.validate_,
            cutoff(RUN_DATE).isoformat(),
            items_path=raw.items_path,
        )
        plan = plan_features_task(
            validated.accepted_path, str(ws.features(RUN_DATE)), config.features
        )
        parts = range(len(plan.partitions))
        vocabularies = write_vocabularies_task(plan, [partition_ids_task(plan, p) for p in parts])
        counts = [encode_partition_task(plan, p, vocabularies["cutoff"]) for p in parts]
        features = finish_features_task(plan, vocabularies, counts)
        client = tracking.client_for(ws)
        experiment_id = tracking.ensure_experiment(client, ws, config.tracking.experiment)
        run_id = str(flow_run.id)
        parent = tracking.start_parent_run(
            client, experiment_id, "tiny", {"run_date": "2026-03-02", "prefect.flow_run_id": run_id}
        )
        data_tags = {
            "data.fingerprint": tracking.fingerprint(features.features_dir),
            "data.n_train": str(features.n_train),
            "data.n_valid": str(features.n_valid),
            "run_date": RUN_DATE.isoformat(),
        }
        trained = train_task(
            "popularity",
            config.train,
            features.features_dir,
            str(ws.models(RUN_DATE)),
            str(ws.root),
            experiment_id,
            parent,
            data_tags,
        )
        evaluate_task(trained, features.features_dir, EvaluateConfig(), str(ws.root))
        out = {
            "run_id": run_id,
            "run_date": RUN_DATE.isoformat(),
            "status": "COMPLETED",
            "workspace": str(ws.root),
            "mlflow_uri": ws.mlflow_uri,
            "mlflow_parent_run_id": parent,
        }
        assert publish_run_summary(out)
        return {**out, "partitions": len(plan.partitions)}

    return tiny()


def test_task_runs_in_the_api_carry_their_names(tiny_night) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[tiny_night["run_id"]]))
        )
    names = {r.name for r in runs}
    parts = range(tiny_night["partitions"])
    assert tiny_night["partitions"] > 1
    expected = {"ingest-demo", "validate-interactions+items", "train-popularity"}
    expected |= {"evaluate-popularity"} | {f"partition-ids-{p}" for p in parts}
    expected |= {f"encode-partition-{p}" for p in parts}
    assert expected <= names, sorted(names)
    # the tasks without a name template keep Prefect's: the task's name and a short suffix
    singles = {"plan-features", "write-vocabularies", "finish-features"}
    assert singles <= {name.rsplit("-", 1)[0] for name in names - expected}


def test_the_flow_run_links_its_summary_and_the_mlflow_run(tiny_night) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[tiny_night["run_id"]])
            )
        )
    by_key = {a.key: a for a in artifacts}
    assert {"recpipe-run-summary", "recpipe-run-figures", "recpipe-mlflow-run"} <= set(by_key)
    link = by_key["recpipe-mlflow-run"]
    assert link.type == "markdown"  # Prefect stores a link artifact as a Markdown link
    # no MLflow UI known here (a SQLite store): the link is the tracking URI
    assert tiny_night["mlflow_uri"] in link.data
    assert tiny_night["mlflow_parent_run_id"] in link.data


def test_the_mlflow_parent_run_links_the_prefect_flow_run(tiny_night) -> None:
    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=tiny_night["mlflow_uri"]).get_run(
        tiny_night["mlflow_parent_run_id"]
    )
    url = run.data.tags["prefect.flow_run_url"]
    assert url.startswith("http://") and url.endswith(f"/runs/flow-run/{tiny_night['run_id']}")
    assert run.data.tags["prefect.flow_run_id"] == tiny_night["run_id"]
    # the night's data snapshot is the parent's dataset input as well as the model run's
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["features-2026-03-02"]


def test_the_link_goes_to_the_mlflow_ui_when_its_address_is_known(tiny_night, monkeypatch) -> None:
    from tasks.report import mlflow_link, summary_markdown

    monkeypatch.setenv("MLFLOW_UI_URL", "http://mlflow.example:5000/")
    link, text = mlflow_link(tiny_night)
    parent = tiny_night["mlflow_parent_run_id"]
    assert link.startswith("http://mlflow.example:5000/#/experiments/")
    assert f"/runs/{parent}?workflowType=machine_learning" in link
    assert parent in text
    assert f"[`{parent}`]({link})" in summary_markdown(tiny_night)
