"""Operating the pipeline on real Prefect: backfill as of each date, cached re-runs, the per-date
lock, a failed run that leaves the previous tables serving, and ``recpipe status``."""

from __future__ import annotations

import contextlib
import contextvars
import io
import os
import threading
from datetime import date, timedelta

import pandas as pd
import pytest

START, END = date(2026, 3, 2), date(2026, 3, 4)
DATES = [START + timedelta(days=i) for i in range(3)]
SAME = ["user_id", "rank", "item_id", "score", "model_name", "strategy", "reason"]


def task_run_names(flow_run_id: str) -> set[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return {r.name.rsplit("-", 1)[0] for r in runs}  # "encode-partition-05a" -> "encode-partition"


def tables(config) -> tuple[pd.DataFrame, pd.DataFrame]:
    from tasks.publishing.stores import read_database_table, read_lake_table
    from tasks.storage.workspace import Workspace

    ws = Workspace.at(config.workspace)
    parquet = read_lake_table(ws.tables / "recommendations")
    database = read_database_table(ws.database_url, "recommendations")
    return parquet.astype({"run_date": object}), database


@pytest.fixture(scope="module")
def source_files(tmp_path_factory) -> dict:
    """A 'files' source whose events run past the backfill range (until END + 4 days)."""
    from tasks.sources.demo import generate_demo

    folder = tmp_path_factory.mktemp("source")
    events, items = generate_demo(
        n_users=150,
        n_items=100,
        mean_interactions=15,
        weeks=4,
        end=pd.Timestamp(END, tz="UTC") + pd.Timedelta(days=4),
    )
    events.to_parquet(folder / "events.parquet", index=False)
    items.to_parquet(folder / "items.parquet", index=False)
    return {"path": str(folder / "events.parquet"), "items_path": str(folder / "items.parquet")}


@pytest.fixture(scope="module")
def backfilled(prefect_harness, tmp_path_factory, source_files, make_config) -> dict:
    from flows.backfill import backfill
    from tasks.storage.workspace import Workspace

    config = make_config(
        tmp_path_factory.mktemp("backfill"),
        ingest={"source": "files", "files": source_files},
        evaluate={"min_users": 1, "min_events": 1},  # the gate decides on 150 users here
    )
    ws = Workspace.at(config.workspace)
    first = backfill(start=START, end=END, config=config)
    raw_mtimes = {d: ws.raw(d).joinpath("interactions.parquet").stat().st_mtime_ns for d in DATES}
    before = tables(config)
    second = backfill(start=START, end=END, config=config)
    return {
        "config": config,
        "first": first,
        "second": second,
        "before": before,
        "after": tables(config),
        "raw_mtimes": raw_mtimes,
    }


def test_backfill_writes_one_partition_per_date_as_of_that_date(backfilled) -> None:
    from tasks.storage.workspace import Workspace

    config, first = backfilled["config"], backfilled["first"]
    parquet, database = backfilled["before"]
    assert [r["run_date"] for r in first] == [d.isoformat() for d in DATES]
    assert {r["status"] for r in first} == {"COMPLETED"}
    # each date says what its gate decided and what the alias did
    assert all(r["champion"] for r in first)
    assert "champion moved to v" in first[0]["champion"] or "champion is v" in first[0]["champion"]
    assert sorted(set(parquet["run_date"])) == DATES
    assert sorted(set(database["run_date"])) == DATES
    for r in first:  # each date published by its own flow run
        day = date.fromisoformat(r["run_date"])
        assert set(parquet.loc[parquet["run_date"] == day, "run_id"]) == {r["run_id"]}
    ws = Workspace.at(config.workspace)
    latest = []
    for day in DATES:  # the source runs 4 days past END; each date saw only its own past
        raw = pd.read_parquet(ws.raw(day) / "interactions.parquet")
        assert raw["timestamp"].max() < pd.Timestamp(day + timedelta(days=1), tz="UTC")
        latest.append(len(raw))
    assert latest == sorted(latest) and latest[0] < latest[-1]


def test_rerunning_the_backfill_changes_nothing(backfilled) -> None:
    (p1, d1), (p2, d2) = backfilled["before"], backfilled["after"]
    for a, b in ((p1, p2), (d1, d2)):
        assert len(a) == len(b)
        key = ["run_date", "user_id", "rank"]
        left = a.sort_values(key)[["run_date", *SAME]].astype(str).reset_index(drop=True)
        right = b.sort_values(key)[["run_date", *SAME]].astype(str).reset_index(drop=True)
        pd.testing.assert_frame_equal(left, right)
    assert d2.groupby("run_date").size().to_dict() == d1.groupby("run_date").size().to_dict()
    # the re-run republished each date: new flow runs, same rows
    assert set(p2["run_id"]) == {r["run_id"] for r in backfilled["second"]}


def test_a_cached_rerun_skips_ingest_validate_features_and_training(backfilled) -> None:
    from tasks.storage.workspace import Workspace

    first, second = backfilled["first"], backfilled["second"]
    assert all(r["cached"] == "-" for r in first)
    tail = "score,check,report"  # unchanged data, same model version: reused as well
    assert all(
        r["cached"] == f"ingest,validate,features,train-popularity,{tail}" for r in second
    ), [r["cached"] for r in second]
    cold, cached = task_run_names(first[0]["run_id"]), task_run_names(second[0]["run_id"])
    features = {"plan-features", "partition-ids", "encode-partition", "finish-features"}
    assert {"ingest", "as-of", "validate", "train", "publish"} | features <= cold
    assert not {"ingest", "as-of", "validate", "train", "evaluate"} & cached
    assert not features & cached
    assert {"promote", "monitor", "publish"} <= cached
    assert not {"plan-scoring", "score-shard", "check-output", "report"} & cached
    ws = Workspace.at(backfilled["config"].workspace)
    for day, mtime in backfilled["raw_mtimes"].items():  # the raw files were not rewritten
        assert ws.raw(day).joinpath("interactions.parquet").stat().st_mtime_ns == mtime


def expected_monitor(current: pd.DataFrame, previous: pd.DataFrame, catalog: set) -> dict:
    """The monitor's figures computed here from the published rows, by their definitions."""
    now = current.groupby("user_id")["item_id"].apply(set)
    then = previous.groupby("user_id")["item_id"].apply(set)
    users = sorted(set(now.index) & set(then.index))
    top_now = current[current["rank"] == 1].set_index("user_id")["item_id"]
    top_then = previous[previous["rank"] == 1].set_index("user_id")["item_id"]
    slots = current["item_id"].value_counts()
    counts = [int(slots.get(item, 0)) for item in sorted(catalog)]
    pairs = sum(abs(a - b) for a in counts for b in counts)  # Gini: mean absolute difference
    return {
        "mean_jaccard": sum(len(now[u] & then[u]) / len(now[u] | then[u]) for u in users)
        / len(users),
        "top1_changed_share": sum(top_now[u] != top_then[u] for u in users) / len(users),
        "coverage": len(set(current["item_id"]) & catalog) / len(catalog),
        "gini": pairs / (2 * len(counts) * sum(counts)),
    }


def test_monitor_compares_each_date_with_the_previous_one(backfilled) -> None:
    from mlflow.tracking import MlflowClient

    from tasks.storage.workspace import Workspace

    ws = Workspace.at(backfilled["config"].workspace)
    parquet, _ = backfilled["before"]
    day, previous = date(2026, 3, 3), date(2026, 3, 2)
    catalog = set(pd.read_parquet(ws.validated(day) / "interactions.parquet")["item_id"])
    expected = expected_monitor(
        parquet[parquet["run_date"] == day], parquet[parquet["run_date"] == previous], catalog
    )
    assert 0 < expected["mean_jaccard"] < 1 and 0 < expected["gini"] < 1  # not degenerate
    client = MlflowClient(tracking_uri=ws.mlflow_uri)
    experiment = client.get_experiment_by_name("recpipe-nightly")
    runs = client.search_runs(
        [experiment.experiment_id], filter_string="attributes.run_name = 'nightly-2026-03-03'"
    )
    assert len(runs) == 2  # the backfill and its re-run (same rows both times)
    for run in runs:
        assert run.data.tags["monitor.previous_run_date"] == previous.isoformat()
        for name, value in expected.items():
            assert run.data.metrics[f"monitor.{name}"] == pytest.approx(value, abs=1e-9), name


@pytest.fixture(scope="module")
def failed_run(backfilled, harness_api_url, tmp_path_factory) -> dict:
    """`recpipe run` for the last date with a coverage floor no run can meet, then status."""
    from flows.cli import main

    config = backfilled["config"]
    files = config.ingest.files
    toml = tmp_path_factory.mktemp("conf") / "recpipe.toml"
    toml.write_text(
        "\n".join(
            [
                '[ingest]\nsource = "files"',
                f'[ingest.files]\npath = "{files.path}"\nitems_path = "{files.items_path}"',
                '[train]\nmodels = ["popularity"]',
                "[score]\nk = 5",
                "[monitor]\nfail_min_coverage = 1.0",
            ]
        )
        + "\n"
    )
    workspace = ["--workspace", str(config.workspace)]
    saved = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = harness_api_url  # the CLI must not start its own server
    err, out = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = main(
                [*workspace, "--config", str(toml), "run", "--run-date", str(END), "--as-of"]
            )
            status_code = main([*workspace, "status"])
    finally:
        if saved is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = saved
    from mlflow.tracking import MlflowClient

    from tasks.storage.workspace import Workspace

    client = MlflowClient(tracking_uri=Workspace.at(config.workspace).mlflow_uri)
    experiment = client.get_experiment_by_name("recpipe-nightly")
    newest = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"attributes.run_name = 'nightly-{END.isoformat()}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )[0]
    return {
        "flow_run_id": newest.data.tags["prefect.flow_run_id"],
        "code": code,
        "stderr": err.getvalue(),
        "stdout": out.getvalue(),
        "status_code": status_code,
    }


def test_a_failed_run_says_which_stage_and_leaves_the_tables(backfilled, failed_run) -> None:
    from mlflow.tracking import MlflowClient

    from tasks.storage.workspace import Workspace

    assert failed_run["code"] == 2
    stderr = failed_run["stderr"]
    assert "recpipe: stage monitor failed: " in stderr
    assert "coverage=" in stderr and "previous tables keep serving" in stderr
    assert "Traceback" not in stderr
    _, database = tables(backfilled["config"])
    last = database[database["run_date"] == END]
    assert set(last["run_id"]) == {backfilled["second"][-1]["run_id"]}  # unchanged
    uri = Workspace.at(backfilled["config"].workspace).mlflow_uri
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("recpipe-nightly")
    newest = client.search_runs(
        [experiment.experiment_id],
        filter_string="attributes.run_name = 'nightly-2026-03-04'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )[0]
    assert newest.info.status == "FAILED"
    assert newest.data.tags["recpipe.failed_stage"] == "monitor"
    assert "MonitorError" in newest.data.tags["recpipe.error"]


def artifacts_of(flow_run_id: str, key: str) -> list:
    """The artifacts with ``key`` of one flow run (other tests' runs share the server)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            )
        )


def test_the_failed_run_has_a_summary_artifact(backfilled, failed_run) -> None:
    (summary,) = artifacts_of(failed_run["flow_run_id"], "recpipe-run-summary")
    assert "# recpipe nightly 2026-03-04: FAILED" in summary.data
    assert "**stage monitor failed**" in summary.data and "## Monitoring" in summary.data
    completed_run = backfilled["first"][1]["run_id"]  # 2026-03-03
    (completed,) = artifacts_of(completed_run, "recpipe-run-summary")
    assert "# recpipe nightly 2026-03-03: COMPLETED" in completed.data
    for section in ("## Data", "## Models", "## Promotion", "## Scoring", "## Monitoring"):
        assert section in completed.data
    assert "mean Jaccard of top-K lists" in completed.data and "Gini" in completed.data
    (figures,) = artifacts_of(completed_run, "recpipe-run-figures")
    assert figures.type == "table"


def test_status_shows_the_runs_and_what_the_table_serves(backfilled, failed_run) -> None:
    assert failed_run["status_code"] == 0
    text = failed_run["stdout"]
    assert f"serving run date {END.isoformat()}" in text
    assert "FAILED" in text and "stage monitor failed" in text
    assert "FINISHED" in text and "cached: ingest,validate,features" in text
    assert "Prefect server http://127.0.0.1:" in text


def test_a_concurrent_second_run_for_the_same_date_does_not_publish(
    prefect_harness, tmp_path, make_config, monkeypatch
) -> None:
    from mlflow.tracking import MlflowClient

    import tasks.publish as publishing
    from flows.nightly import nightly
    from tasks.storage.locks import LockError, held_locks
    from tasks.storage.workspace import Workspace

    config = make_config(tmp_path / "ws")
    ws = Workspace.at(config.workspace)
    day = START
    states: dict = {}
    context = contextvars.copy_context()
    # The first run waits at publishing, holding its lock, until the second has ended:
    # the two overlap however slowly either starts.
    reached, release = threading.Event(), threading.Event()
    publish = publishing.publish_night

    def held_publish(*args, **kwargs):
        if not reached.is_set():  # only the first call: the first run's
            reached.set()
            release.wait(600)
        return publish(*args, **kwargs)

    monkeypatch.setattr(publishing, "publish_night", held_publish)

    def first() -> None:
        states["first"] = context.run(nightly, config=config, run_date=day, return_state=True)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert reached.wait(300), "the first run never reached publishing"
        assert f"run_date={day}" in held_locks(ws.locks)
        second = nightly(config=config, run_date=day, return_state=True)
    finally:
        release.set()
        thread.join(timeout=600)

    assert second.is_failed()
    error = second.result(raise_on_failure=False)
    assert isinstance(error, LockError) and error.recpipe_stage == "lock"
    assert states["first"].is_completed(), states["first"]
    first_run_id = states["first"].result()["run_id"]
    parquet, database = tables(config)
    assert set(parquet["run_id"]) == {first_run_id}
    assert set(database["run_id"]) == {first_run_id}
    client = MlflowClient(tracking_uri=ws.mlflow_uri)
    experiment = client.get_experiment_by_name("recpipe-nightly")
    refused = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`prefect.flow_run_id` = '{second.state_details.flow_run_id}'",
    )
    assert [r.info.status for r in refused] == ["FAILED"]
    assert refused[0].data.tags["recpipe.failed_stage"] == "lock"


def test_retraining_trains_again_and_publishes_the_same_rows(backfilled) -> None:
    from flows.nightly import nightly

    config = backfilled["config"]
    retrain = config.model_copy(
        update={"cache": config.cache.model_copy(update={"reuse_models": False})}
    )
    from tasks import tracking
    from tasks.storage.workspace import Workspace
    from tasks.tracking import registry

    client = tracking.client_for(Workspace.at(config.workspace))
    live = registry.champion_version(client, config.tracking.registered_model)
    summary = nightly(config=retrain, run_date=START, as_of=True)
    # a past date (END is published): its decision is recorded, the live alias stays
    assert registry.champion_version(client, config.tracking.registered_model) == live
    if summary["promotion"]["move_alias"]:
        assert "older than the newest published date" in summary["published"]["champion_outcome"]
    assert list(summary["cached_stages"]) == ["ingest", "validate", "features"]
    assert not summary["models"][0]["reused"]
    names = task_run_names(summary["run_id"])
    assert {"train", "evaluate", "promote", "score-shard", "publish"} <= names
    # the same validated data as the first run of the date: its similarity is reused
    assert summary["scoring"]["similarity_cached"]
    parquet, _ = tables(config)
    now = parquet[parquet["run_date"] == START].sort_values(["user_id", "rank"])
    p1, _ = backfilled["before"]
    then = p1[p1["run_date"] == START].sort_values(["user_id", "rank"])
    pd.testing.assert_frame_equal(
        now[SAME].astype(str).reset_index(drop=True), then[SAME].astype(str).reset_index(drop=True)
    )


def test_backfill_refuses_bad_ranges_and_the_landing_source() -> None:
    from flows.backfill import backfill_dates
    from tasks.data.as_of import check_source
    from tasks.errors import ConfigError

    today = date(2026, 3, 10)
    assert backfill_dates(START, END, today) == DATES
    with pytest.raises(ConfigError, match="before --start"):
        backfill_dates(END, START, today)
    with pytest.raises(ConfigError, match="after today"):
        backfill_dates(START, date(2026, 3, 11), today)
    with pytest.raises(ConfigError, match="--source files --path"):
        check_source("landing")


def test_as_of_keeps_events_before_the_next_day_and_unparsed_ones() -> None:
    from tasks.data.as_of import filter_as_of

    frame = pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u3", "u4"],
            "timestamp": pd.to_datetime(
                ["2026-03-02 23:59:59", "2026-03-03 00:00:00", None, "2026-03-01 00:00:00"],
                utc=True,
            ),
        }
    )
    kept = filter_as_of(frame, date(2026, 3, 2))
    assert list(kept["user_id"]) == ["u1", "u3", "u4"]
    assert len(frame) == 4  # the input is not changed
