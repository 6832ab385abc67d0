"""The MLflow experiment page, as a browser renders it, shows the ranking metrics.

Runs ``python -m flows.bench.mlflow_screenshot`` (a real ``mlflow ui`` and headless
Chromium in a 1366x900 window) on a store with one night: a parent run and two model
runs, as the nightly writes them. The browser test skips when no Chromium is installed;
the rule that decides "in view" is tested on known header positions.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from flows.bench.mlflow_screenshot import Header, find_chromium, out_of_view, runs_table
from tests.conftest import run_command

ROOT = Path(__file__).resolve().parents[3]

needs_chromium = pytest.mark.skipif(
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


@needs_chromium
def test_the_experiment_page_shows_ndcg_and_recall_in_view_at_1366px(tmp_path: Path) -> None:
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
    # the headers' places as the browser laid them out: on screen, within 1366 px
    placed = {
        line.split()[-1]: line.split()
        for line in done.stdout.splitlines()
        if line.strip().startswith(tuple("0123456789")) and "metrics.`" in line
    }
    for column in ("metrics.`ndcg_at_10`", "metrics.`recall_at_10`"):
        left, _, right, seen = placed[column][:4]
        assert seen == "visible" and 0 <= float(left) < float(right) <= 1366, placed[column]


def test_a_metric_column_clipped_or_past_the_edge_is_out_of_view() -> None:
    ndcg = Header("metrics.`ndcg_at_10`", 635.0, 735.0, True)
    recall = Header("metrics.`recall_at_10`", 735.0, 835.0, True)
    assert out_of_view([ndcg, recall], 1366) == []
    clipped = Header("metrics.`recall_at_10`", 935.0, 1035.0, False)  # under the grid's edge
    assert [p.split()[0] for p in out_of_view([ndcg, clipped], 1366)] == [clipped.column]
    past = Header("metrics.`ndcg_at_10`", 1400.0, 1500.0, True)
    assert [p.split()[0] for p in out_of_view([past, recall], 1366)] == [past.column]
    assert out_of_view([ndcg], 1366) == ["no recall_at_K column header"]
