"""What a backtest leaves behind: the per-policy summary, the plot of each policy's
next-period NDCG over the dates, and the MLflow run holding the per-date table.

The MLflow run (experiment ``recpipe-backtest``) holds:

- the per-date table as ``backtest.csv`` (one row per date, ``flows/backtest.py``);
- ``policies.csv``, the summary: per policy its mean next-period NDCG@K, mean regret and
  its NDCG over always-popularity's;
- ``next_period_ndcg.png``, one line per policy (the gate and every "always X") over
  the dates, and the best candidate in hindsight;
- metrics ``mean_ndcg.<policy>`` and ``mean_regret.<policy>`` (``gate``,
  ``always_ease``, ...), ``gate_vs_popularity``, and the per-date figures (NDCG,
  regret, seconds per stage) as steps, one step per date.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from flows.backtest import policy_columns


def summary_text(table: pd.DataFrame, k: int) -> str:
    """The policy table as printed: mean next-period NDCG@K, mean regret, NDCG over
    always-popularity's, and the gate's ratio spelled out."""
    lines = [
        f"{'policy':<26} {f'NDCG@{k} next':>13} {'regret':>8} {'x popularity':>13}",
    ]
    for row in table.itertuples(index=False):
        ratio = "" if pd.isna(row.vs_popularity) else f"{row.vs_popularity:.2f}"
        lines.append(f"{row.policy:<26} {row.mean_ndcg:>13.4f} {row.mean_regret:>8.4f} {ratio:>13}")
    gate = table.loc[table["policy"] == "gate"]
    if len(gate) and pd.notna(gate["vs_popularity"].iloc[0]):
        lines.append(
            f"gate / always popularity, mean next-period NDCG@{k}: "
            f"{gate['vs_popularity'].iloc[0]:.3f} over {int(gate['nights'].iloc[0])} date(s)"
        )
    return "\n".join(lines)


def policy_figure(rows: list[dict], models: Sequence[str], k: int) -> Any:
    """Each policy's next-period NDCG@K per date (the gate in bold), the best in hindsight
    dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(rows)
    dates = pd.to_datetime(frame["date"]) if len(frame) else pd.Series([], dtype="object")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, prefix in policy_columns(models).items():
        column = f"{prefix}_ndcg"
        if column not in frame:
            continue
        bold = name == "gate"
        ax.plot(
            dates,
            frame[column],
            marker="o",
            markersize=4 if bold else 3,
            linewidth=2.4 if bold else 1.2,
            color="black" if bold else None,
            label=name,
        )
    if "best_ndcg" in frame:
        ax.plot(dates, frame["best_ndcg"], linestyle=":", color="grey", label="best in hindsight")
    ax.set_xlabel("date (the night as of the day before; scored on the period from it)")
    ax.set_ylabel(f"next-period NDCG@{k}")
    ax.set_title("Backtest: each policy's next-period NDCG")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def record(
    config: Any,
    rows: list[dict],
    table: pd.DataFrame,
    folder: Path,
    run_name: str,
    params: dict[str, Any],
) -> tuple[Path, str]:
    """``backtest.csv`` and ``policies.csv`` in ``folder`` and one MLflow run in
    experiment ``recpipe-backtest`` (module docstring); returns the CSV path and run id."""
    from tasks import tracking
    from tasks.storage.workspace import Workspace

    ws = Workspace.at(config.workspace)
    csv_path = Path(folder) / "backtest.csv"
    pd.DataFrame(rows).to_csv(csv_path, index=False)
    policies_path = Path(folder) / "policies.csv"
    table.to_csv(policies_path, index=False)
    client = tracking.client_for(ws)
    experiment_id = tracking.ensure_experiment(client, ws, "recpipe-backtest")
    run_id = tracking.start_parent_run(
        client,
        experiment_id,
        run_name,
        {"source": config.ingest.source, "start": str(params["start"]), "end": str(params["end"])},
    )
    tracking.log_params(
        client,
        run_id,
        tracking.flatten(
            "",
            {
                **params,
                "models": ",".join(config.train.models),
                "evaluate": config.evaluate.model_dump(mode="json"),
                "features": config.features.model_dump(mode="json"),
            },
        ),
    )
    for step, row in enumerate(rows):
        values = {k: v for k, v in row.items() if isinstance(v, float) and pd.notna(v)}
        tracking.log_metrics(client, run_id, values, step=step)
    tracking.log_metrics(client, run_id, policy_metrics(table))
    client.log_artifact(run_id, str(csv_path))
    client.log_artifact(run_id, str(policies_path))
    models = list(config.train.models)
    figure = policy_figure(rows, models, config.evaluate.k)
    tracking.log_figure(client, run_id, figure, "next_period_ndcg.png")
    client.set_terminated(run_id)
    return csv_path, run_id


def policy_metrics(table: pd.DataFrame) -> dict[str, float]:
    """``mean_ndcg.<policy>``, ``mean_regret.<policy>`` and ``gate_vs_popularity`` (the
    finite ones)."""
    metrics: dict[str, float] = {}
    for row in table.itertuples(index=False):
        key = str(row.policy).replace(" ", "_")
        metrics[f"mean_ndcg.{key}"] = float(row.mean_ndcg)
        metrics[f"mean_regret.{key}"] = float(row.mean_regret)
        if row.policy == "gate":
            metrics["gate_vs_popularity"] = float(row.vs_popularity)
    return {k: v for k, v in metrics.items() if pd.notna(v)}
