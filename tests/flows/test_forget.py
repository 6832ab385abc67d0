"""End to end: two nights on demo data, forget a user who is in every store, prove it;
the next night keeps them out even when their old events land again; a forget killed
half way is finished by a re-run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import run_command

TARGET = "zoë.smith"  # non-ASCII: its JSON-, URL- and HTML-escaped forms differ from it
DAYS = [date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)]
ROOT = Path(__file__).resolve().parents[2]


def _config(workspace: Path, source: str, path: Path):
    from tests.flows.conftest import small_config

    return small_config(
        workspace,
        ingest={"source": source, "files": {"path": str(path)}},
        publish={"keep_runs": 5},
    )


def _published(config) -> tuple[pd.DataFrame, pd.DataFrame]:
    from tasks.publishing.stores import read_database_table, read_lake_table
    from tasks.storage.workspace import Workspace

    ws = Workspace.at(config.workspace)
    lake = read_lake_table(ws.tables / "recommendations").astype({"run_date": str})
    db = read_database_table(config.publish.url(ws.database_url), "recommendations")
    return lake, db.astype({"run_date": str})


def _others(frame: pd.DataFrame) -> pd.DataFrame:
    """Other users' rows of the two nights before the forget (a third may have run)."""
    cols = ["run_date", "user_id", "rank", "item_id", "score", "model_version"]
    before = frame["run_date"].isin([d.isoformat() for d in DAYS[:2]])
    rest = frame[(frame["user_id"] != TARGET) & before][cols].astype(str)
    return rest.sort_values(cols).reset_index(drop=True)


@pytest.fixture(scope="module")
def world(prefect_harness, tmp_path_factory):
    """Two nights (files source: demo events, the target's with two bad rows), then a
    copy of the workspace for the kill test, then the forget through the Prefect flow."""
    from flows.forget import forget_flow
    from flows.nightly import nightly
    from tasks.sources.demo import generate_demo

    base = tmp_path_factory.mktemp("forget")
    events, _ = generate_demo(n_users=150, n_items=100, mean_interactions=15, end="2026-03-01")
    events["user_id"] = events["user_id"].replace({"u00000": TARGET})
    target_events = events[events["user_id"] == TARGET]
    bad = target_events.head(2).assign(value=99.0)  # out of range: quarantined with the id
    drops = base / "files"
    drops.mkdir()
    pd.concat([events, bad]).to_csv(drops / "events.csv", index=False)
    workspace = base / "workspace"
    config = _config(workspace, "files", drops)
    for day in DAYS[:2]:
        state = nightly(config=config, run_date=day, return_state=True)
        assert state.is_completed(), state
    _sample_rows_artifact()
    pristine = base / "pristine"
    shutil.copytree(workspace, pristine)
    before = _published(config)
    summary = forget_flow(users=[TARGET], config=config)
    versions = _versions(config)
    return {
        "versions": versions,
        "config": config,
        "workspace": workspace,
        "pristine": pristine,
        "before": before,
        "summary": summary,
        "target_events": target_events,
        "base": base,
    }


def _sample_rows_artifact() -> None:
    """A Prefect artifact holding the target (as a validation failure's sample rows do),
    waited for until the server has also stored its event (written asynchronously)."""
    import time

    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(key="recpipe-sample-rows", markdown=f"| user |\n|---|\n| {TARGET} |")
    (database,) = _prefect_db()
    escaped = json.dumps(TARGET)[1:-1]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with closing(sqlite3.connect(database, timeout=30)) as conn:
            query = "SELECT count(*) FROM events WHERE instr(payload, ?) > 0"
            if conn.execute(query, (escaped,)).fetchone()[0]:
                return
        time.sleep(0.5)
    raise AssertionError("the artifact's event never reached the Prefect database")


def _versions(config) -> dict[str, dict]:
    from tasks import tracking
    from tasks.storage.workspace import Workspace

    client = tracking.client_for(Workspace.at(config.workspace))
    found = client.search_model_versions(f"name='{config.tracking.registered_model}'")
    return {str(v.version): dict(v.tags) for v in found}


def _prefect_db() -> list[Path]:
    from tasks.forget.stores import prefect_database

    found = prefect_database()
    return [found] if found else []


def test_the_target_was_in_every_store_before(world) -> None:
    from tasks.forget.scan import verify

    found = {f.where.split("/")[0] for f in verify(world["pristine"], TARGET)}
    assert {"raw", "validated", "features", "models", "scores", "tables", "mlflow"} <= found
    assert "validation" in found  # GX results and Data Docs: the quarantined rows
    assert any(name.startswith("recpipe.db") for name in found)  # the file or its WAL
    quarantine = pd.read_parquet(
        world["pristine"] / "validated" / "run_date=2026-03-02" / "quarantine.parquet"
    )
    assert TARGET in set(quarantine["user_id"])


def test_verify_finds_nothing_and_grep_agrees(world) -> None:
    from tasks.forget.scan import verify

    assert _prefect_db()  # the harness's Prefect database is searched too
    found = verify(world["workspace"], TARGET, extra_files=_prefect_db())
    assert found == [], found
    for needle in (TARGET, "zo\\u00eb.smith", "zo%C3%AB.smith"):
        grep = subprocess.run(
            ["grep", "-r", "-a", "-l", "-F", needle, str(world["workspace"])],
            capture_output=True,
            check=False,
        )
        assert grep.stdout == b"", grep.stdout


def test_rows_gone_from_both_stores_and_others_unchanged(world) -> None:
    lake, db = _published(world["config"])
    lake0, db0 = world["before"]
    assert TARGET in set(lake0["user_id"]) and TARGET in set(db0["user_id"])
    assert sorted(set(lake0["run_date"])) == ["2026-03-01", "2026-03-02"]
    assert TARGET not in set(lake["user_id"]) and TARGET not in set(db["user_id"])
    pd.testing.assert_frame_equal(_others(lake), _others(lake0))
    pd.testing.assert_frame_equal(_others(db), _others(db0))


def test_lake_history_no_longer_holds_the_user(world) -> None:
    from deltalake import DeltaTable

    root = world["workspace"] / "tables" / "recommendations"
    table = DeltaTable(str(root))
    readable = []
    for version in range(table.version()):
        try:
            old = DeltaTable(str(root), version=version).to_pandas()
        except Exception:  # noqa: BLE001, S112 - purged: the version can no longer be read
            continue
        readable.append(version)
        assert TARGET not in set(old["user_id"])
    assert TARGET not in set(table.to_pandas()["user_id"])


def test_prefect_artifacts_no_longer_hold_the_user(world) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    assert world["summary"]["removed"]["sqlite"]["prefect-test.db"] >= 2  # artifact + event
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["recpipe-sample-rows"]))
        )
    assert TARGET not in artifact.data and "erased-" in artifact.data


def test_ledger_holds_only_a_salted_hash(world) -> None:
    from tasks.forget import ledger

    root = world["workspace"]
    salt = root / "forget" / "salt"
    assert oct(salt.stat().st_mode & 0o777) == "0o600"
    entries = ledger.load(root)["entries"]
    assert list(entries) == [ledger.user_hash(ledger.salt(root), TARGET)]
    (entry,) = entries.values()
    assert entry["state"] == "done" and entry["removed"]["database"]["recommendations"] > 0
    assert TARGET.encode() not in (root / "forget" / "ledger.json").read_bytes()


def test_model_versions_trained_on_the_user_are_marked(world) -> None:
    versions = world["versions"]  # both nights' versions, right after the forget
    assert world["summary"]["affected_versions"] == sorted(versions, key=int) == ["1", "2"]
    for tags in versions.values():
        assert tags.get("erasure.retrain_required") == "true"


def test_next_night_keeps_the_user_out_and_retrains(world) -> None:
    """Night 3 (landing source): the target's old events arrive again in a drop."""
    from flows.nightly import nightly
    from tasks import tracking
    from tasks.forget.scan import verify
    from tasks.storage.workspace import Workspace

    landing = world["base"] / "landing"
    landing.mkdir(exist_ok=True)
    again = world["target_events"].copy()
    fresh = again.assign(user_id="u00001", timestamp=pd.Timestamp("2026-03-02T10:00:00Z"))
    pd.concat([again, fresh]).to_csv(landing / "drop-2026-03-03.csv", index=False)
    config = _config(world["workspace"], "landing", landing)
    state = nightly(config=config, run_date=DAYS[2], return_state=True)
    assert state.is_completed(), state
    out = state.result()
    assert out["validation"]["erased_rows_dropped"] == len(again)
    assert out["promotion"]["retired_erased_champion"]
    client = tracking.client_for(Workspace.at(config.workspace))
    champion = client.get_model_version_by_alias(config.tracking.registered_model, "champion")
    assert champion.tags.get("erasure.retrain_required") is None
    lake, db = _published(config)
    assert "2026-03-03" in set(lake["run_date"]) and "2026-03-03" in set(db["run_date"])
    assert TARGET not in set(lake["user_id"]) | set(db["user_id"])
    quarantine = pd.read_parquet(
        world["workspace"] / "validated" / "run_date=2026-03-03" / "quarantine.parquet"
    )
    assert TARGET not in set(quarantine["user_id"])
    found = verify(world["workspace"], TARGET, extra_files=_prefect_db())
    assert found == [], found


def _forget_cli(workspace: Path, *args: str, fault: str | None = None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(workspace.parent / "prefect-home")
    if fault:
        env["RECPIPE_FAULT_AT"] = fault
    return run_command(
        [sys.executable, "-m", "flows.cli", "--workspace", str(workspace), "forget", *args],
        timeout=600,
        cwd=ROOT,
        env=env,
    )


@pytest.mark.parametrize(
    ("fault", "landed"),
    [("forget:lake", "models, database"), ("forget:files-half", "models, database, lake")],
)
def test_a_forget_killed_half_way_is_finished_by_a_rerun(
    world, tmp_path: Path, fault: str, landed: str
) -> None:
    from tasks.forget.run import unfinished
    from tasks.publishing.stores import read_database_table, read_lake_table

    workspace = tmp_path / "ws"
    shutil.copytree(world["pristine"], workspace)
    killed = _forget_cli(workspace, "--user", TARGET, fault=fault)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    db = read_database_table(f"sqlite:///{workspace / 'recpipe.db'}", "recommendations")
    lake = read_lake_table(workspace / "tables" / "recommendations")
    assert TARGET not in set(db["user_id"])  # committed before the kill: the new state
    if fault == "forget:lake":  # not started: the old state, whole
        assert TARGET in set(lake["user_id"])
        assert len(lake) == len(world["before"][0])
    else:  # the files half done: each file old or new, every one readable
        assert TARGET not in set(lake["user_id"])
        for path in (workspace / "raw").rglob("*.parquet"):
            pd.read_parquet(path)
    assert [r["state"] for r in unfinished(workspace)] == ["started"]
    rerun = _forget_cli(workspace, "--user", TARGET)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resumed an interrupted request: {landed}" in rerun.stdout
    assert unfinished(workspace) == []
    verified = _forget_cli(workspace, "--verify", TARGET)
    assert verified.returncode == 0, verified.stdout
    assert "0 place(s) hold the id" in verified.stdout
    again = _forget_cli(workspace, "--user", TARGET)  # safe to re-run: nothing left
    assert again.returncode == 0, again.stderr
    assert "--verify" in again.stdout


def test_verify_exits_non_zero_when_the_id_is_there(world, tmp_path: Path) -> None:
    result = _forget_cli(world["pristine"], "--verify", TARGET)
    assert result.returncode == 1
    assert "FOUND raw/ingest_date=2026-03-01/interactions.parquet column user_id" in result.stdout


def test_the_forget_deployment_is_served_beside_the_nightly(world) -> None:
    from flows.operate import forget_deployment

    deployment = forget_deployment(world["config"])
    assert deployment.name == world["config"].schedule.deployment
    assert "users" in deployment._parameter_openapi_schema.required
