"""The registered champion, served over HTTP by ``mlflow models serve``, answers with the
rows the table holds: for 200 users of a published night (business rules, strategies and
reasons included), for the users a refresh published since, and for a user whose events
come in the request."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

RUN_DATE = date(2026, 3, 2)
K = 5
COMPARED = ["user_id", "rank", "item_id", "strategy", "reason", "model_version", "run_id"]


@pytest.fixture(scope="module")
def night(prefect_harness, tmp_path_factory, make_config):
    from flows.nightly import nightly

    workspace = tmp_path_factory.mktemp("served-ws")
    landing = workspace / "landing"
    landing.mkdir()
    config = make_config(
        workspace,
        ingest={"demo": {"n_users": 300, "n_items": 120, "mean_interactions": 15}},
        train={"models": ["ease"], "content_models": ["content_tower"]},
        score={"k": K, "deny_items": ["i00003"], "max_per_genre": 3, "active_days": 30},
        refresh={"path": str(landing)},
    )
    state = nightly(config=config, run_date=RUN_DATE, return_state=True)
    assert state.is_completed(), state
    return config


@pytest.fixture(scope="module")
def server(night):
    """``mlflow models serve`` of the champion, on a free port of 127.0.0.1."""
    from tasks.storage.workspace import Workspace

    ws = Workspace.at(night.workspace)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # mlflow starts uvicorn by name: the virtualenv's bin folder must be on PATH
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    uris = {"MLFLOW_TRACKING_URI": ws.mlflow_uri, "MLFLOW_REGISTRY_URI": ws.mlflow_uri}
    env = {**os.environ, **uris, "PATH": path}
    model = f"models:/{night.tracking.registered_model}@champion"
    log = open(ws.root / "serve.log", "w")  # noqa: SIM115  (closed below)
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "mlflow", "models", "serve", "-m", model),
            *("--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)),
        ],
        env=env,
        cwd=ws.root,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert proc.poll() is None, (ws.root / "serve.log").read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=5) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(1)
    else:
        pytest.fail("mlflow models serve did not answer /ping within 240 s")
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)
    log.close()


def ask(url: str, frame: pd.DataFrame) -> pd.DataFrame:
    body = json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split", index=False))})
    request = urllib.request.Request(
        f"{url}/invocations", data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return pd.DataFrame(json.loads(response.read())["predictions"])


def table_rows(config, users: list[str]) -> pd.DataFrame:
    from tasks.publishing.stores import read_lake_table
    from tasks.storage.workspace import Workspace

    table = read_lake_table(Workspace.at(config.workspace).tables / "recommendations", RUN_DATE)
    return table[table["user_id"].isin(set(users))]


def unequal_rows(
    table: pd.DataFrame, served: pd.DataFrame, compared: list[str] = COMPARED
) -> pd.DataFrame:
    """The table's rows the served answer does not hold exactly (scores to 1e-6)."""
    key = ["user_id", "rank"]
    a = table.sort_values(key).reset_index(drop=True)
    b = served.sort_values(key).reset_index(drop=True)
    assert len(a) == len(b), f"table {len(a)} rows, served {len(b)}"

    def text(frame: pd.DataFrame) -> pd.DataFrame:  # a missing reason is missing either way
        return frame[compared].map(lambda v: "<missing>" if pd.isna(v) else str(v))

    same = (text(a) == text(b)).all(axis=1) & ((a["score"] - b["score"]).abs() < 1e-6)
    return a[~same]


def test_the_served_champion_gives_the_tables_rows_for_200_users(night, server) -> None:
    users = _all_users(night)[:200]
    assert len(users) == 200
    served = ask(server, pd.DataFrame({"user_id": users}))
    table = table_rows(night, users)
    # rules and strategies in play, the demo's new items (a content model's) among them
    assert set(table["strategy"]) >= {"personal", "social", "new_item"}
    bad = unequal_rows(table, served)
    assert bad.empty, bad.head(10).to_string()
    # from the night's publish (one user may have been refreshed since, by the test below)
    assert (served["history"].str.startswith(f"published: night {RUN_DATE}")).mean() > 0.95
    assert "i00003" not in set(served["item_id"])  # the deny list holds for the served model


def test_a_users_events_in_the_request_give_the_same_rows(night, server) -> None:
    from tasks.storage.workspace import Workspace

    validated = Workspace.at(night.workspace).root / "validated" / f"run_date={RUN_DATE}"
    events = pd.read_parquet(validated / "interactions.parquet")
    refreshed, forgotten = refreshed_user(night), _all_users(night)[-1]
    users = sorted(set(events["user_id"].astype(str)) - {refreshed, forgotten})[:5]
    mine = events[events["user_id"].isin(users)][["user_id", "item_id", "timestamp"]]
    mine = mine.assign(timestamp=mine["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S"))
    served = ask(server, mine)
    assert (served["history"] == "request").all()
    # ranked with the newest publish's rules, whose run id it carries (a refresh's, when
    # one ran since the night)
    same = [c for c in COMPARED if c != "run_id"]
    # the champion alone ranks a request's events: the table's rows before its new items
    table = table_rows(night, users)
    table = table[table["strategy"] != "new_item"]
    served = served.merge(table[["user_id", "rank"]], on=["user_id", "rank"])
    bad = unequal_rows(table, served, same)
    assert bad.empty, bad.to_string()


def test_after_a_refresh_the_served_model_gives_the_refreshed_rows(night, server) -> None:
    from tasks.refresh.run import run_refresh

    personal = table_rows(night, _all_users(night))
    user = refreshed_user(night)
    mine = personal[personal["user_id"] == user]
    item = mine["item_id"].iloc[0]
    new_item = mine.loc[mine["strategy"] == "new_item", "item_id"].iloc[0]
    start = pd.Timestamp(RUN_DATE, tz="UTC") + pd.Timedelta(minutes=1)
    pd.DataFrame(
        {
            "user_id": [user, "newcomer-s"],
            "item_id": [item, new_item],  # the newcomer chooses one of the night's new items
            "timestamp": [start, start + pd.Timedelta(seconds=1)],
        }
    ).to_csv(night.refresh.path / f"drop-{uuid.uuid4().hex[:8]}.csv", index=False)
    before = table_rows(night, [user])

    out = run_refresh(night, f"test-{uuid.uuid4().hex[:8]}", today=RUN_DATE)

    assert out["status"] == "published", out
    assert out["served_context"] is not None
    table = table_rows(night, [user, "newcomer-s"])
    assert not table.equals(before) and set(table["user_id"]) == {user, "newcomer-s"}
    # refreshed lists end with new items as the night's did, never one the user chose
    assert (table.sort_values("rank").groupby("user_id")["strategy"].last() == "new_item").all()
    newcomer = table[table["user_id"] == "newcomer-s"]
    assert new_item not in set(newcomer["item_id"])
    served = ask(server, pd.DataFrame({"user_id": [user, "newcomer-s"]}))
    bad = unequal_rows(table, served)
    assert bad.empty, bad.to_string()
    assert served["history"].str.startswith(f"published: refresh {RUN_DATE}").all()


def refreshed_user(config) -> str:
    """The user the refresh test gives an event (a personal one, not among the first)."""
    return "u00007"


def test_a_forgotten_user_is_no_longer_served(night, server) -> None:
    from flows.forget import forget_flow

    target = _all_users(night)[-1]
    assert not ask(server, pd.DataFrame({"user_id": [target]})).empty

    forget_flow(users=[target], config=night)

    assert ask(server, pd.DataFrame({"user_id": [target]})).empty
    assert table_rows(night, [target]).empty


def _all_users(config) -> list[str]:
    from tasks.publishing.stores import read_lake_table
    from tasks.storage.workspace import Workspace

    table = read_lake_table(Workspace.at(config.workspace).tables / "recommendations", RUN_DATE)
    return sorted(table["user_id"].unique())


def test_a_copy_without_its_tracking_server_ranks_by_the_model_alone(night, tmp_path) -> None:
    from tasks import tracking
    from tasks.storage.workspace import Workspace

    ws = Workspace.at(night.workspace)
    client = tracking.client_for(ws)
    name = night.tracking.registered_model
    version = client.get_model_version_by_alias(name, "champion")
    local = Path(
        __import__("mlflow").artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version.version}", dst_path=str(tmp_path)
        )
    )
    code = (
        "import mlflow, pandas as pd, sys, json\n"
        "mlflow.set_tracking_uri('sqlite:///' + sys.argv[2])\n"
        "m = mlflow.pyfunc.load_model(sys.argv[1])\n"
        "out = m.predict(pd.DataFrame({'user_id': ['u00001']}), params={'k': 3})\n"
        "print(json.dumps(out.to_dict('records')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(local), str(tmp_path / "elsewhere.db")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert {r["strategy"] for r in rows} == {"model"}
    assert rows[0]["history"].startswith("none: no publishing context")
