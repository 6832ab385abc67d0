"""The MLflow experiment page, as a browser renders it, shows the ranking metrics.

Runs ``python -m flows.bench.mlflow_screenshot`` (a real ``mlflow ui`` and headless
Chromium) on a store with one night: a parent run and two model runs, as the nightly
writes them. Skips when no Chromium is installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from flows.bench.mlflow_screenshot import find_chromium, runs_table
from tests.conftest import run_command

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="no Chromium on PATH (apt-get update && apt-get install -y chromium)",
)


def one_night(root: Path) -> None:
    from tasks import tracking
    from tasks.storage.workspace import Workspace
    from tasks.tracking import ui

    ws = Workspace.at(root)
    client = tracking.client_for(ws)
    experiment_id = tracking.ensure_experiment(client, ws, "recpipe-nightly")
    tags = {"run_date": "2026-03-02", "prefect.flow_run_id": "f-1"}
    parent = tracking.start_parent_run(client, experiment_id, "nightly-2026-03-02", tags)
    for model, ndcg in (("popularity", 0.125), ("ease", 0.3125)):
        run = tracking.start_child_run(
            client, experiment_id, parent, model, {"model": model, **tags}
        )
        metrics = {"ndcg@10": ndcg, "recall@10": ndcg / 2, "train_seconds": 1.5}
        tracking.log_metrics(client, run, metrics)
        ui.set_runs_view(client, experiment_id, list(metrics))
        client.set_terminated(run)
    client.set_terminated(parent)


def test_the_experiment_page_shows_ndcg_per_model(tmp_path: Path) -> None:
    one_night(tmp_path / "ws")
    png = tmp_path / "shot.png"
    done = run_command(
        [
            sys.executable,
            "-m",
            "flows.bench.mlflow_screenshot",
            "--workspace",
            str(tmp_path / "ws"),
            "--out",
            str(png),
        ],
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = runs_table(png.with_suffix(".html").read_text())
    assert table.metric_columns[:1] and "ndcg_at_10" in table.metric_columns
    # the night's group row (its best model), then each model's own figure
    assert sorted(table.ndcg_values()["ndcg_at_10"]) == [0.125, 0.3125, 0.3125]
