"""Report: figures and counts of the night on the nightly parent MLflow run, and the run
summary as Prefect artifacts (Markdown ``recpipe-run-summary``, table ``recpipe-run-figures``,
link ``recpipe-mlflow-run`` to the MLflow parent run), written by the flow at the end of every
run, also a failed one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from expectations.escaping import markdown_text
from tasks.promote import evidence_line, outcome
from tasks.storage.published import publication_note

if TYPE_CHECKING:
    from tasks.evaluate import ModelResult


def published_figures(validated_path: str | Path, scores_path: str | Path) -> dict:
    """What the report says of the night's data and table, on Arrow (two columns of the
    validated interactions, three of the scored table; no pandas frame of either):

    * ``catalog``: interactions per item of the data, items in id order;
    * ``recommended``: times each of those items is recommended;
    * ``coverage``: share of the data's items recommended at least once;
    * ``rows``, ``users``: rows and distinct users of the table;
    * ``by_strategy``: users per strategy (a user's first row says which)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    items = pq.read_table(validated_path, columns=["item_id"])
    counted = items.group_by("item_id").aggregate([([], "count_all")])
    counted = counted.take(pc.sort_indices(counted, sort_keys=[("item_id", "ascending")]))
    ids = counted.column("item_id")
    catalog = counted.column("count_all").to_numpy().astype(np.int64)
    recs = pq.read_table(scores_path, columns=["user_id", "item_id", "strategy"])
    recommended_ids = recs.column("item_id")
    position = pc.drop_null(pc.index_in(recommended_ids, value_set=ids.cast(recommended_ids.type)))
    recommended = np.bincount(position.to_numpy().astype(np.int64), minlength=len(catalog))
    first = recs.group_by("user_id", use_threads=False).aggregate([("strategy", "first")])
    by_strategy = first.column("strategy_first").value_counts().to_pylist()
    n_items = len(catalog)
    return {
        "catalog": catalog,
        "recommended": recommended,
        "coverage": float((recommended > 0).sum() / n_items) if n_items else float("nan"),
        "rows": recs.num_rows,
        "users": first.num_rows,
        "by_strategy": {c["values"]: int(c["counts"]) for c in by_strategy},
    }


def report(results: list[ModelResult], validated_path: str, scores_path: str, out_dir: str) -> dict:
    """The night's figures as PNG files in ``out_dir`` and its published-table counts;
    :func:`log_report` puts them on the parent run (a re-run on unchanged inputs logs the
    files an earlier run rendered)."""
    import matplotlib.pyplot as plt

    from tasks.tracking import plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = [m for m in results[0].metrics if "@" in m] if results else []
    figures_of = published_figures(validated_path, scores_path)
    figures = {
        "models_side_by_side.png": plots.metrics_bar(
            [r.summary() for r in results], names, "models on tonight's hold-out"
        ),
        "long_tail.png": plots.long_tail(
            figures_of["catalog"],
            figures_of["recommended"],
            "popularity long tail: data vs recommendations",
        ),
    }
    for name, figure in figures.items():
        try:
            figure.savefig(out / name)
        finally:
            plt.close(figure)
    coverage = figures_of["coverage"]
    metrics = {
        "published.coverage": coverage,
        "published.rows": float(figures_of["rows"]),
        "published.users": float(figures_of["users"]),
    }
    metrics.update({f"published.users_{s}": float(n) for s, n in figures_of["by_strategy"].items()})
    return {
        "coverage": coverage,
        "metrics": metrics,
        "figures": [str(out / name) for name in figures],
    }


report_task = task(name="report", cache_policy=NO_CACHE)(report)


def log_report(workspace_root: str, parent_run_id: str, report: dict) -> None:
    """The rendered figures (under ``plots/``) and counts on the night's parent run."""
    from tasks import tracking
    from tasks.storage.workspace import Workspace

    client = tracking.client_for(Workspace.at(workspace_root))
    for figure in report["figures"]:
        client.log_artifact(parent_run_id, figure, "plots")
    tracking.log_metrics(client, parent_run_id, report["metrics"])


# -- the run summary: Prefect artifacts, also when the run fails -------------------------
SUMMARY_KEY = "recpipe-run-summary"
FIGURES_KEY = "recpipe-run-figures"
MLFLOW_KEY = "recpipe-mlflow-run"


def _fmt(value: object, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def summary_figures(out: dict) -> list[dict]:
    """The night's key figures as rows ``{section, figure, value}`` (the table artifact)."""
    rows: list[dict] = []

    def add(section: str, figure: str, value: object) -> None:
        rows.append({"section": section, "figure": figure, "value": _fmt(value)})

    add("run", "status", out.get("status"))
    if out.get("failed_stage") or out.get("error"):
        add("run", "failed stage", out.get("failed_stage"))
    add("run", "seconds", _fmt(out.get("total_seconds"), 1))
    add("run", "cached stages", ", ".join(out.get("cached_stages") or {}) or "none")
    v = out.get("validation") or {}
    for key in ("rows_read", "rows_accepted", "rows_quarantined", "duplicates_dropped"):
        if key in v:
            add("data", key.replace("_", " "), v[key])
    for m in out.get("models") or []:
        for name, value in m["metrics"].items():
            if name.startswith(("ndcg@", "recall@")):
                add("models", f"{m['model']} {name}", value)
    p = out.get("promotion") or {}
    if p:
        verdict = {"kept": "kept (already champion)"}.get(outcome(p), outcome(p))
        add(
            "promotion",
            "decision",
            f"{p.get('challenger')} v{p.get('challenger_version')} {verdict}",
        )
        add("promotion", "champion serving", f"v{p.get('champion_version')}")
    s = out.get("scoring") or {}
    for strategy, users in sorted((s.get("users_by_strategy") or {}).items()):
        add("scoring", f"users {strategy}", users)
    if s:
        add("scoring", "rows", s.get("rows"))
    figures = (out.get("monitor") or {}).get("figures") or {}
    for key in ("mean_jaccard", "top1_changed_share", "users_compared", "coverage", "gini"):
        if key in figures:
            add("monitor", key.replace("_", " "), figures[key])
    if out.get("published"):
        add("publish", "rows", out["published"].get("rows"))
    return rows


def _md(value: object) -> str:
    """A value as Markdown text: messages and names can carry input (ids, titles) verbatim."""
    return markdown_text(_fmt(value))


def _code(value: object) -> str:
    """A code span, or escaped text when the value could break out of one or hold markup."""
    text = _fmt(value)
    return f"`{text}`" if not set(text) & set("`<>&|\n") else markdown_text(text)


def summary_markdown(out: dict) -> str:
    """The night in Markdown: data, models, promotion, scoring, monitoring, stages.

    Every string that may come from input or from an error message goes through ``_md`` /
    ``_code`` (HTML, backticks, pipes and links escaped), so no input renders as markup."""
    status = _md(out.get("status", "FAILED"))
    lines = [f"# recpipe nightly {_md(out.get('run_date'))}: {status}", ""]
    parent = _code(out.get("mlflow_parent_run_id"))
    link = mlflow_link(out)
    if link is not None and link[0].startswith(("http://", "https://")):
        parent = f"[{parent}]({link[0]})"
    lines.append(
        f"flow run {_code(out.get('run_id'))} · MLflow parent run {parent}"
        f" · {_fmt(out.get('total_seconds'), 1)} s"
        + (" · as of the end of the run date" if out.get("as_of") else "")
    )
    if status != "COMPLETED":
        lines += [
            "",
            f"**stage {_md(out.get('failed_stage') or '?')} failed**: {_md(out.get('error'))}",
            "",
            _md(publication_note(out.get("publication"))),
        ]
    v = out.get("validation") or {}
    if v:
        lines += ["", "## Data", "", "| rows | count |", "|---|---:|"]
        for key in ("rows_read", "rows_accepted", "rows_quarantined", "duplicates_dropped"):
            lines.append(f"| {key.replace('rows_', '').replace('_', ' ')} | {_fmt(v.get(key))} |")
        dropped = ((out.get("ingest") or {}).get("as_of") or {}).get("rows_dropped")
        if dropped:
            lines.append(f"| after the run date (as of) | {_fmt(dropped)} |")
    models = out.get("models") or []
    if models:
        names = [n for n in models[0]["metrics"] if n.startswith(("ndcg@", "recall@"))]
        lines += ["", "## Models (hold-out)", ""]
        lines.append("| model | " + " | ".join(names) + " | train s | |")
        lines.append("|---|" + "---:|" * len(names) + "---:|---|")
        for m in models:
            cells = " | ".join(_fmt(m["metrics"].get(n)) for n in names)
            note = "reused" if m.get("reused") else ""
            lines.append(
                f"| {_md(m['model'])} | {cells} | {_fmt(m['train_seconds'], 1)} | {note} |"
            )
    p = out.get("promotion") or {}
    if p:
        verdict = {
            "kept": "**kept** (already champion)",
            "promoted": "**promoted**",
            "rejected": "**not promoted**",
        }.get(outcome(p), f"**{outcome(p)}**")
        lines += [
            "",
            "## Promotion",
            "",
            (
                f"{_md(p.get('challenger'))} v{_md(p.get('challenger_version'))} {verdict}: "
                f"{_md(p.get('reason'))}  "
            ),
            (
                f"champion serving: {_md(p.get('registered_name'))} "
                f"v{_md(p.get('champion_version'))}  "
            ),
            f"evidence: {_md(evidence_line(p))}",
        ]
    s = out.get("scoring") or {}
    if s:
        lines += ["", "## Scoring", "", "| strategy | users |", "|---|---:|"]
        for strategy, users in sorted((s.get("users_by_strategy") or {}).items()):
            lines.append(f"| {_md(strategy)} | {_fmt(users)} |")
        lines.append(f"| **rows** | {_fmt(s.get('rows'))} |")
    mon = out.get("monitor") or {}
    if mon.get("figures"):
        f = mon["figures"]
        previous = _md(mon.get("previous_run_date") or "no previous run")
        lines += ["", f"## Monitoring (against {previous})", "", "| figure | value |", "|---|---:|"]
        lines.append(f"| mean Jaccard of top-K lists | {_fmt(f.get('mean_jaccard'))} |")
        lines.append(f"| users whose top-1 changed | {_fmt(f.get('top1_changed_share'))} |")
        lines.append(
            f"| users compared / new / gone | {_fmt(f.get('users_compared'))} / "
            f"{_fmt(f.get('users_new'))} / {_fmt(f.get('users_gone'))} |"
        )
        lines.append(f"| catalog coverage | {_fmt(f.get('coverage'))} |")
        lines.append(f"| Gini of recommendations | {_fmt(f.get('gini'))} |")
        for finding in mon.get("findings") or []:
            lines.append(f"\n- {_md(finding['level'])}: {_md(finding['message'])}")
    if out.get("published"):
        pub = out["published"]
        lines += [
            "",
            "## Published",
            "",
            (
                f"{_fmt(pub.get('rows'))} rows to the lake table {_code(pub.get('lake'))} "
                f"(version {_md(pub.get('lake_version'))}) and table {_code(pub.get('table'))}"
            ),
        ]
    cached = out.get("cached_stages") or {}
    lines += ["", "## Stages (seconds)", "", "| stage | seconds | |", "|---|---:|---|"]
    for stage, seconds in (out.get("stage_seconds") or {}).items():
        note = "cached" if stage in cached else ""
        if stage == "train" and any(f"train-{m['model']}" in cached for m in models):
            note = "models reused"
        lines.append(f"| {_md(stage)} | {seconds:.2f} | {note} |")
    return "\n".join(lines) + "\n"


def mlflow_link(out: dict) -> tuple[str, str] | None:
    """``(link, text)`` to the night's MLflow parent run: its page in the MLflow UI when the
    UI's address is known (``MLFLOW_UI_URL``, or a tracking server), else the tracking URI
    with the command that serves it. None before the parent run exists."""
    run_id, uri = out.get("mlflow_parent_run_id"), out.get("mlflow_uri")
    if not run_id or not uri:
        return None
    from tasks.tracking import ui

    base = ui.mlflow_ui_url(uri)
    if base:
        experiment_id = out.get("mlflow_experiment_id") or _experiment_of(out, run_id)
        if experiment_id:
            return ui.run_url(base, experiment_id, run_id), f"MLflow run {run_id}"
    return uri, f"MLflow run {run_id} in {uri} (mlflow ui --backend-store-uri {uri})"


def _experiment_of(out: dict, run_id: str) -> str | None:
    try:
        from tasks import tracking
        from tasks.storage.workspace import Workspace

        client = tracking.client_for(Workspace.at(out["workspace"]))
        return client.get_run(run_id).info.experiment_id
    except Exception:  # noqa: BLE001 - a link is never worth failing a summary
        return None


def publish_run_summary(out: dict) -> bool:
    """Create the summary artifacts inside a flow run (keyed, so the flow run's Artifacts
    tab and the Artifacts page both list them, each key with its history of nights), with a
    link to the night's MLflow parent run; never raises (the run's outcome wins)."""
    import logging

    from prefect.context import FlowRunContext

    if FlowRunContext.get() is None:
        return False
    try:
        from prefect.artifacts import (
            create_link_artifact,
            create_markdown_artifact,
            create_table_artifact,
        )

        create_markdown_artifact(
            key=SUMMARY_KEY, markdown=summary_markdown(out), description="recpipe nightly run"
        )
        create_table_artifact(
            key=FIGURES_KEY, table=summary_figures(out), description="recpipe nightly figures"
        )
        link = mlflow_link(out)
        if link is not None:
            create_link_artifact(
                key=MLFLOW_KEY,
                link=link[0],
                link_text=link[1],
                description="the night's MLflow parent run (params, metrics, plots, models)",
            )
    except Exception as exc:  # noqa: BLE001 - a summary must not change the run's outcome
        logging.getLogger(__name__).warning("run summary artifacts not created: %s", exc)
        return False
    return True
