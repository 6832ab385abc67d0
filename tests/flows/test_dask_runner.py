"""The same nightly flow on a 2-worker local Dask cluster builds the same features and
publishes the same table as in process: feature building's user partitions and scoring's
user shards run as Prefect tasks on the Dask workers."""

from __future__ import annotations

import os
import socket
from datetime import date

import pandas as pd

RUN_DATE = date(2026, 3, 2)
SAME = ["user_id", "rank", "item_id", "score", "model_name", "strategy", "reason"]


def test_dask_runner_publishes_what_the_local_runner_does(prefect_harness, tmp_path, make_config):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.nightly import nightly_flow_for
    from tasks.config import DemoConfig
    from tasks.publishing.stores import read_lake_table
    from tasks.storage.workspace import Workspace
    from tasks.tracking.runs import fingerprint

    tables, runs = {}, {}
    for kind in ("local", "dask"):
        config = make_config(
            tmp_path / kind,
            train={"models": ["popularity", "ease"]},
            features={"part_rows": 400},  # about 2,000 events: several partitions
            score={"k": 5, "shard_rows": 400},  # and several shards
            runner={"kind": kind, "workers": 2},
        )
        summary = nightly_flow_for(config)(config=config, run_date=RUN_DATE)
        assert summary["status"] == "COMPLETED"
        assert summary["scoring"]["shards"] >= 3
        assert summary["features"]["partitions"] >= 3
        tables[kind] = read_lake_table(Workspace.at(config.workspace).tables / "recommendations")
        runs[kind] = summary

    local, dask = (
        t.sort_values(["user_id", "rank"])[SAME].astype(str).reset_index(drop=True)
        for t in (tables["local"], tables["dask"])
    )
    assert len(local) == (150 + DemoConfig().newcomers) * 5  # the demo's friends-only users too
    pd.testing.assert_frame_equal(local, dask)
    assert (
        runs["dask"]["scoring"]["users_by_strategy"]
        == runs["local"]["scoring"]["users_by_strategy"]
    )
    assert fingerprint(runs["dask"]["features"]["features_dir"]) == fingerprint(
        runs["local"]["features"]["features_dir"]
    )
    here = f"{socket.gethostname()}:{os.getpid()}"
    assert runs["local"]["scoring"]["workers"] == [here]
    assert here not in runs["dask"]["scoring"]["workers"]  # the shards ran in Dask's workers

    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[runs["dask"]["run_id"]]))
        )
    for name, count in (
        ("score-shard", runs["dask"]["scoring"]["shards"]),
        ("partition-ids", runs["dask"]["features"]["partitions"]),
        ("encode-partition", runs["dask"]["features"]["partitions"]),
    ):
        named = [r for r in task_runs if r.name.startswith(name)]
        assert len(named) == count, name
        assert all(r.state_type.value == "COMPLETED" for r in named), name
