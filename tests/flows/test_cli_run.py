"""``recpipe run`` from the command line, three nights of one date in one workspace:

1. a successful run, and what it prints;
2. the same date after the code changed (every stage runs again), failing in the report
   stage, after its tables were published;
3. the same date with a batch-level validation failure (too few rows): nothing published.

Then ``recs show``, ``recs similar`` and the ``model`` commands read that workspace.
"""

from __future__ import annotations

import contextlib
import errno
import io
from datetime import date

import pandas as pd
import pytest

from flows.cli import main

RUN_DATE = date(2026, 3, 2)
K = 5
USERS = 150


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def database(workspace, table: str = "recommendations", kind: str | None = None) -> pd.DataFrame:
    from tasks.publishing.stores import read_database_table
    from tasks.storage.workspace import Workspace

    url = Workspace.at(workspace).database_url
    if kind is None:
        return read_database_table(url, table, RUN_DATE)
    return read_database_table(url, table, RUN_DATE, kind)


def nightly_runs(workspace) -> list:
    """The MLflow parent runs of RUN_DATE, oldest first."""
    from mlflow.tracking import MlflowClient

    from tasks.storage.workspace import Workspace

    client = MlflowClient(tracking_uri=Workspace.at(workspace).mlflow_uri)
    experiment = client.get_experiment_by_name("recpipe-nightly")
    return client.search_runs(
        [experiment.experiment_id],
        filter_string=f"attributes.run_name = 'nightly-{RUN_DATE.isoformat()}'",
        order_by=["attributes.start_time ASC"],
    )


@pytest.fixture(scope="module")
def nights(harness_api_url, tmp_path_factory) -> dict:
    import tasks.report
    from tasks.storage import cache

    root = tmp_path_factory.mktemp("cli-run")
    workspace = root / "ws"
    base = (
        f"[ingest.demo]\nn_users = {USERS}\nn_items = 100\nmean_interactions = 15\n"
        f'[train]\nmodels = ["popularity", "ease"]\ncontent_models = []\n[score]\nk = {K}\n'
    )  # the demo has content: no content model, so the leaderboard holds these two
    (root / "recpipe.toml").write_text(base)
    (root / "too-few.toml").write_text(base + "[validate]\nmin_rows = 1000000\n")
    run = ["--workspace", str(workspace), "--config"]
    day = ["run", "--run-date", RUN_DATE.isoformat()]
    out: dict = {"workspace": workspace}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PREFECT_API_URL", harness_api_url)  # the CLI must not start a server
        out["first"] = cli(*run, str(root / "recpipe.toml"), *day)
        out["after_first"] = database(workspace)

        def full_disk(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device", str(root / "report.png"))

        patch.setattr(cache, "code_version", lambda: "the code changed")
        patch.setattr(tasks.report, "report_task", full_disk)
        out["second"] = cli(*run, str(root / "recpipe.toml"), *day)
        out["after_second"] = database(workspace)
        patch.undo()
        patch.setenv("PREFECT_API_URL", harness_api_url)
        out["third"] = cli(*run, str(root / "too-few.toml"), *day)
        out["after_third"] = database(workspace)
    out["runs"] = nightly_runs(workspace)
    return out


def test_a_successful_run_prints_its_summary(nights) -> None:
    from tasks.config import DemoConfig

    code, stdout, stderr = nights["first"]
    assert code == 0, stderr
    first = nights["runs"][0]
    flow_run_id = first.data.tags["prefect.flow_run_id"]
    assert f"recpipe nightly {RUN_DATE} completed in " in stdout
    assert f"(flow run {flow_run_id})" in stdout
    stages = stdout.split("stages (seconds):\n", 1)[1].split("\n\n", 1)[0].splitlines()
    ran = [line.split()[0] for line in stages]
    assert ran[:4] == ["lock", "ingest", "validate", "features"], ran
    assert {"train", "evaluate", "promote", "score", "check", "publish", "report"} <= set(ran)
    assert "skipped" not in stdout  # a first night runs every stage
    assert "data (source demo):" in stdout and " rows read = " in stdout
    models = stdout.split("models (hold-out):\n", 1)[1].split("\n\n", 1)[0]
    lines = models.splitlines()
    named = [line.split()[0] for line in lines if "users=" in line]
    assert named == ["popularity", "ease"]
    intervals = [line for line in lines if " interval [" in line]  # each model's, below it
    assert len(intervals) == 2 and all(line.split()[0] == "ndcg@10" for line in intervals)
    assert "promotion: challenger " in stdout and "PROMOTED" in stdout
    table = nights["after_first"]
    assert set(table["run_id"]) == {flow_run_id}
    newcomers = DemoConfig().newcomers  # the demo's friends-only users, scored socially
    assert f"scored {USERS + newcomers} users, {len(table)} rows; by strategy: " in stdout
    assert f"'social': {newcomers}" in stdout
    assert len(table) == (USERS + newcomers) * K
    landed = stdout.split("where everything landed:\n", 1)[1]
    lake = str(nights["workspace"] / "tables" / "recommendations")
    assert f"recommendations (lake)     {lake}  (Delta table, version 0)" in landed
    assert "table 'recommendations'" in landed and str(nights["workspace"]) in landed


def test_changed_code_runs_every_stage_again(nights) -> None:
    first, second = nights["runs"][0], nights["runs"][1]
    assert first.data.tags["recpipe.cached_stages"] == "none"
    assert second.data.tags["recpipe.cached_stages"] == "none"  # same inputs, other code
    assert first.data.metrics["stage_seconds.train"] > 0
    assert second.data.metrics["stage_seconds.train"] > 0


def test_a_run_that_failed_after_publishing_says_its_tables_were_published(nights) -> None:
    code, _, stderr = nights["second"]
    second = nights["runs"][1]
    assert code == 2
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("recpipe: stage report failed: no space left on device writing ")
    assert "This run's tables were published before it failed (recommendations, similar_items" in (
        line
    )
    assert "Nothing was published" not in line
    assert second.info.status == "FAILED" and second.data.tags["recpipe.failed_stage"] == "report"
    assert set(nights["after_second"]["run_id"]) == {second.data.tags["prefect.flow_run_id"]}


def test_a_batch_level_validation_failure_publishes_nothing(nights) -> None:
    code, _, stderr = nights["third"]
    third = nights["runs"][2]
    assert code == 2
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("recpipe: stage validate failed: ")
    assert "1000000" in line.replace(",", "") and "published" not in line.split("(traceback")[0]
    assert third.info.status == "FAILED" and third.data.tags["recpipe.failed_stage"] == "validate"
    pd.testing.assert_frame_equal(
        nights["after_third"].sort_values(["user_id", "rank"]).reset_index(drop=True),
        nights["after_second"].sort_values(["user_id", "rank"]).reset_index(drop=True),
    )


def test_recs_show_prints_a_users_published_recommendations(nights) -> None:
    table = nights["after_third"]
    user = min(table["user_id"])
    code, stdout, stderr = cli(
        "--workspace", str(nights["workspace"]), "recs", "show", "--user", user
    )
    assert code == 0, stderr
    rows = table[table["user_id"] == user].sort_values("rank")
    first = rows.iloc[0]
    assert stdout.splitlines()[0] == (
        f"user {user}: run date {RUN_DATE}, model {first['model_name']} "
        f"v{first['model_version']}, strategy {first['strategy']}"
    )
    body = stdout.splitlines()[2:]  # after the header line and the column names
    assert [line.split()[:2] for line in body] == [
        [str(r), i] for r, i in zip(rows["rank"], rows["item_id"], strict=True)
    ]
    code, _, stderr = cli(
        "--workspace", str(nights["workspace"]), "recs", "show", "--user", "nobody"
    )
    assert code == 2 and "'nobody' has no recommendations" in stderr


def test_recs_similar_prints_an_items_similar_items(nights) -> None:
    similar = database(nights["workspace"], "similar_items", "similar_items")
    item = similar.sort_values("item_id")["item_id"].iloc[0]
    code, stdout, stderr = cli(
        "--workspace", str(nights["workspace"]), "recs", "similar", "--item", item
    )
    assert code == 0, stderr
    rows = similar[similar["item_id"] == item].sort_values("rank")
    assert stdout.splitlines()[0].startswith(f"items similar to {item} ")
    assert f"(run date {RUN_DATE})" in stdout.splitlines()[0]
    body = stdout.splitlines()[2:]
    assert [line.split()[:2] for line in body] == [
        [str(r), i] for r, i in zip(rows["rank"], rows["similar_item_id"], strict=True)
    ]


def test_model_commands_list_promote_and_roll_back(nights) -> None:
    from models import declared_inputs
    from tasks import tracking
    from tasks.storage.workspace import Workspace
    from tasks.tracking import registry

    ws = ["--workspace", str(nights["workspace"])]
    client = tracking.client_for(Workspace.at(nights["workspace"]))
    name = "recpipe-recommender"
    champion = registry.champion_version(client, name)
    code, stdout, stderr = cli(*ws, "model", "list")
    assert code == 0, stderr
    versions = registry.list_versions(client, name)
    assert len(versions) == 4  # two models, registered by each of the two nights that trained
    marked = [line for line in stdout.splitlines() if line.lstrip().startswith("*")]
    assert len(marked) == 1 and marked[0].split()[1] == champion
    assert "inputs" in stdout  # what each model reads beyond interactions ("-": nothing)
    assert all(v.tags.get("inputs") == declared_inputs(v.model) for v in versions)
    other = next(v.version for v in versions if v.version != champion)
    code, stdout, stderr = cli(*ws, "model", "promote", other, "--reason", "test by hand")
    assert code == 0, stderr
    assert stdout.strip() == f"{name}: champion is now version {other}"
    assert registry.champion_version(client, name) == other
    code, stdout, stderr = cli(*ws, "model", "rollback")
    assert code == 0, stderr
    assert stdout.strip() == (
        f"{name}: champion rolled back from version {other} to version {champion}"
    )
    assert registry.champion_version(client, name) == champion
