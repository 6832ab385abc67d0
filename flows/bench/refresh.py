"""Refresh benchmark: new events for N users of the demo workspace, refreshed end to end.

On a workspace with a published night (made here on the demo data when it has none), a
landing file with a few new events for each of ``users`` known users is dropped, then:

1. the refresh flow runs in this process (the temporary Prefect server and the imports
   warmed first): its flow time, start to published, and users per second;
2. ``recpipe refresh`` runs as a new process on a second such file, then with
   ``--prefect`` on a third: seconds from the process start to its exit (Python, imports,
   the refresh; with ``--prefect`` also the temporary Prefect server it starts);
3. the nightly's scoring stage (``flows.steps.score_in_shards``: plan, shards, summary) scores
   the same users' histories in this process: its users per second, the reference.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.config import PipelineConfig


def ensure_night(config: PipelineConfig) -> tuple[date, float | None]:
    """The newest published run date (a nightly on the demo data first when none is);
    the seconds that nightly took, None when it was already there."""
    from flows.nightly import nightly
    from tasks.refresh.run import newest_published
    from tasks.storage.workspace import Workspace

    ws = Workspace.at(config.workspace)
    url = config.publish.url(ws.database_url)
    day = newest_published(url, config.publish.table)
    if day is not None:
        return day, None
    start = time.perf_counter()
    nightly(config=config, run_date=datetime.now(UTC).date())
    day = newest_published(url, config.publish.table)
    if day is None:
        raise RuntimeError(f"the nightly published no run date in {config.publish.table}")
    return day, round(time.perf_counter() - start, 1)


def drop_events(
    config: PipelineConfig, run_date: date, users: list[str], per_user: int, seed: int
) -> tuple[Path, pd.DataFrame]:
    """A landing file: ``per_user`` events on random catalogue items for each user (new
    content on every call: the landing manifest reads a file's content once)."""
    rng = np.random.default_rng([seed, time.time_ns() % 2**32])  # a new file every time
    validated = Path(config.workspace) / "validated" / f"run_date={run_date}"
    catalogue = pd.read_parquet(validated / "interactions.parquet", columns=["item_id"])
    items = np.asarray(sorted(catalogue["item_id"].unique()))
    start = pd.Timestamp(run_date, tz="UTC") + pd.Timedelta(hours=seed)
    n = len(users) * per_user
    frame = pd.DataFrame(
        {
            "user_id": np.repeat(users, per_user),
            "item_id": items[rng.integers(0, len(items), n)],
            "timestamp": [start + pd.Timedelta(seconds=int(s)) for s in range(n)],
        }
    )
    if config.refresh.path is None:
        raise ValueError("drop_events needs refresh.path, the landing folder to write to")
    path = Path(config.refresh.path) / f"bench-{seed}-{time.time_ns()}.csv"
    frame.to_csv(path, index=False)
    return path, frame


def nightly_rate(config: PipelineConfig, run_date: date, users: list[str]) -> dict:
    """The nightly scoring stage on the same users' whole histories (this process)."""
    import tempfile

    from flows.steps import Direct, score_in_shards

    root = Path(config.workspace)
    validated = root / "validated" / f"run_date={run_date}" / "interactions.parquet"
    history = pd.read_parquet(validated)
    history = history[history["user_id"].isin(users)]
    items = root / "raw" / f"ingest_date={run_date}" / "items.parquet"
    with tempfile.TemporaryDirectory(dir=root) as folder:
        path = Path(folder) / "interactions.parquet"
        history.to_parquet(path, index=False)
        start = time.perf_counter()
        out = score_in_shards(
            Direct(),
            validated_path=str(path),
            items_path=str(items) if items.is_file() else None,
            registered_name=config.tracking.registered_model,
            workspace_root=str(root),
            config=config.score,
            run_id="bench-nightly-rate",
            run_date=run_date,
            out_dir=str(Path(folder) / "scores"),
        )
        seconds = time.perf_counter() - start
    return {"users": out.users, "seconds": round(seconds, 2), "rate": out.users / seconds}


def bench_refresh(
    config: PipelineConfig, n_users: int, per_user: int, cli: bool, config_file: Path | None
) -> dict:
    from prefect import flow

    from flows.refresh import refresh
    from tasks.refresh.rescore import champion

    run_date, night_seconds = ensure_night(config)
    root = Path(config.workspace)
    validated = root / "validated" / f"run_date={run_date}" / "interactions.parquet"
    known = sorted(pd.read_parquet(validated, columns=["user_id"])["user_id"].unique())
    users = known[:n_users]
    wrapper, version = champion(root, config.tracking.registered_model)  # warm, as served

    @flow(name="recpipe-bench-warmup")
    def warmup() -> int:
        return 1

    warmup()  # the temporary Prefect server, started before timing
    import great_expectations  # noqa: F401

    result: dict[str, Any] = {
        "run_date": run_date.isoformat(),
        "night_seconds": night_seconds,
        "model": f"{wrapper.model.name} v{version}",
        "users": len(users),
        "events": len(users) * per_user,
    }
    result["load_average"] = _load()
    drop_events(config, run_date, users, per_user, seed=1)
    start, cpu = time.perf_counter(), time.process_time()
    out = refresh(config=config)
    result["flow"] = {
        "cpu_seconds": round(time.process_time() - cpu, 2),
        "status": out["status"],
        "users": out.get("users"),
        "wall_seconds": round(time.perf_counter() - start, 2),
        "seconds": out.get("published_seconds") or out["seconds"],
        "arrival_to_published_seconds": out.get("arrival_to_published_seconds"),
    }
    if cli:
        result["cli"] = []
        for seed, flag in ((2, "--no-prefect"), (3, "--prefect")):
            drop_events(config, run_date, users, per_user, seed=seed)
            command = [sys.executable, "-m", "flows.cli", "--workspace", str(root)]
            command += ["--config", str(config_file)] if config_file else []
            command += ["refresh", "--path", str(config.refresh.path), flag]
            start, cpu = time.perf_counter(), _children_cpu()
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            result["cli"].append(
                {
                    "flag": flag,
                    "seconds": round(time.perf_counter() - start, 2),
                    "cpu_seconds": round(_children_cpu() - cpu, 2),
                    "exit": done.returncode,
                    "output": (done.stdout + done.stderr).strip().splitlines()[-6:],
                }
            )
    result["nightly"] = nightly_rate(config, run_date, users)
    return result


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _load() -> str:
    import os

    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def report(result: dict) -> str:
    flow_out = result["flow"]
    users = flow_out["users"] or 0
    rate = users / flow_out["seconds"] if flow_out["seconds"] else 0.0
    nightly = result["nightly"]
    lines = [
        (
            f"refresh benchmark: run date {result['run_date']}, champion {result['model']}, "
            f"{result['users']:,} users, {result['events']:,} new events per file"
        ),
    ]
    lines.append(f"  load average at the start (1, 5, 15 min): {result['load_average']}")
    if result["night_seconds"] is not None:
        lines.append(f"  (published the demo night first: {result['night_seconds']} s)")
    lines += [
        (
            f"  flow (this process, warm):  {flow_out['status']}, {users:,} users, "
            f"{flow_out['seconds']:.2f} s start to published ({rate:,.0f} users/s); "
            f"{flow_out['wall_seconds']:.2f} s with the flow run's own overhead and the Data "
            f"Docs; {flow_out['cpu_seconds']:.2f} CPU s in this process; target < 10 s"
        ),
    ]
    labels = {
        "--no-prefect": "no Prefect server configured (the default)",
        "--prefect": "as a flow run, on a temporary Prefect server it starts",
    }
    for cli in result.get("cli", []):
        lines.append(
            f"  recpipe refresh {cli['flag']} (new process; {labels[cli['flag']]}): "
            f"{cli['seconds']:.2f} s from process start to exit ({cli['cpu_seconds']:.2f} CPU s; "
            f"exit code {cli['exit']}); target < 30 s"
        )
        if cli["exit"] != 0:
            lines += [f"    {line}" for line in cli["output"]]
    lines.append(
        f"  nightly scoring stage, same users: {nightly['users']:,} users in "
        f"{nightly['seconds']:.2f} s ({nightly['rate']:,.0f} users/s); refresh/nightly rate "
        f"{rate / nightly['rate']:.2f}"
    )
    return "\n".join(lines)
