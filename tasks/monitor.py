"""Monitor: tonight's recommendations against the previous run's, checked before publishing.

Figures, all on the scored table before it is published:

* drift against the previous run date's published Parquet partition, over the users in
  both: ``mean_jaccard`` (mean over users of |A & B| / |A | B| of their top-K item sets) and
  ``top1_changed_share`` (share of users whose rank-1 item changed);
* ``coverage``: distinct recommended items / items in the catalog;
* ``gini``: Gini coefficient of how often each catalog item is recommended (0: every item
  equally often; (n-1)/n: one item takes every slot);
* ``data_age_days``: whole days from the newest validated event to the run date (stale
  data: the recommendations are only as fresh as the events behind them).

The catalog is the set of items in tonight's validated interactions (what the models can
know). Thresholds (``MonitorConfig``) turn a figure into a warning, or into a
``MonitorError`` that fails the run before publish, so the previous tables keep serving.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.config import MonitorConfig
from tasks.errors import RecpipeError


class MonitorError(RecpipeError):
    """Tonight's recommendations crossed a ``monitor.fail_*`` threshold; nothing was published."""


@dataclass(frozen=True)
class Finding:
    figure: str
    value: float
    level: str  # "warn" or "fail"
    bound: str  # "min" or "max"
    threshold: float

    @property
    def message(self) -> str:
        side = "below the minimum" if self.bound == "min" else "above the maximum"
        if self.figure == "data_age_days":
            return (
                f"stale data: the newest event is {self.value:.0f} day(s) before the run date, "
                f"{side} {self.threshold:g} ({self.level}); check that the source still delivers"
            )
        return f"{self.figure}={self.value:.4f} is {side} {self.threshold} ({self.level})"


# figure -> (config field suffix, bound)
RULES = {
    "mean_jaccard": ("min_jaccard", "min"),
    "top1_changed_share": ("max_top1_changed", "max"),
    "coverage": ("min_coverage", "min"),
    "gini": ("max_gini", "max"),
    "data_age_days": ("max_data_age_days", "max"),
}


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts (0 when all are equal or all are zero)."""
    x = np.sort(np.asarray(counts, dtype=float))
    n, total = len(x), x.sum()
    if n == 0 or total == 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float(2.0 * np.dot(ranks, x) / (n * total) - (n + 1) / n)


def coverage(recommendations: pd.DataFrame, catalog: pd.Index) -> float:
    if len(catalog) == 0:
        return float("nan")
    recommended = pd.Index(recommendations["item_id"].unique())
    return float(len(recommended.intersection(catalog)) / len(catalog))


def recommendation_gini(recommendations: pd.DataFrame, catalog: pd.Index) -> float:
    """Gini of the number of slots each catalog item gets (items never recommended count 0)."""
    counts = recommendations["item_id"].value_counts().reindex(catalog, fill_value=0)
    return gini(counts.to_numpy())


def drift(current: pd.DataFrame, previous: pd.DataFrame) -> dict[str, Any]:
    """Mean Jaccard of top-K sets and share of changed top-1, over users in both tables."""
    cur = current[["user_id", "item_id", "rank"]].drop_duplicates(["user_id", "item_id"])
    prev = previous[["user_id", "item_id", "rank"]].drop_duplicates(["user_id", "item_id"])
    users = pd.Index(cur["user_id"].unique()).intersection(pd.Index(prev["user_id"].unique()))
    out: dict[str, Any] = {
        "users_compared": len(users),
        "users_new": int(cur["user_id"].nunique() - len(users)),
        "users_gone": int(prev["user_id"].nunique() - len(users)),
        "mean_jaccard": None,
        "top1_changed_share": None,
    }
    if len(users) == 0:
        return out
    cur, prev = cur[cur["user_id"].isin(users)], prev[prev["user_id"].isin(users)]
    size_a = cur.groupby("user_id").size()
    size_b = prev.groupby("user_id").size()
    shared = cur.merge(prev, on=["user_id", "item_id"]).groupby("user_id").size()
    shared = shared.reindex(users, fill_value=0)
    union = size_a.reindex(users) + size_b.reindex(users) - shared
    out["mean_jaccard"] = float((shared / union).mean())
    top_a = cur.sort_values("rank").drop_duplicates("user_id").set_index("user_id")["item_id"]
    top_b = prev.sort_values("rank").drop_duplicates("user_id").set_index("user_id")["item_id"]
    changed = top_a.reindex(users).to_numpy() != top_b.reindex(users).to_numpy()
    out["top1_changed_share"] = float(np.mean(changed))
    return out


def data_age_days(newest_event: pd.Timestamp | None, run_date: date) -> float | None:
    """Whole days from the newest event's (UTC) date to the run date; None without events."""
    if newest_event is None or pd.isna(newest_event):
        return None
    newest = pd.Timestamp(newest_event)
    newest = newest.tz_convert("UTC") if newest.tzinfo else newest
    return float((run_date - newest.date()).days)


def monitor_figures(
    current: pd.DataFrame,
    previous: pd.DataFrame | None,
    catalog: pd.Index,
    age_days: float | None = None,
) -> dict:
    """Every figure of the monitor; drift figures are None without a previous run."""
    figures = {
        "users": int(current["user_id"].nunique()),
        "rows": len(current),
        "catalog_items": len(catalog),
        "coverage": coverage(current, catalog),
        "gini": recommendation_gini(current, catalog),
        "data_age_days": age_days,
    }
    if previous is None:
        figures.update(
            users_compared=0,
            users_new=figures["users"],
            users_gone=0,
            mean_jaccard=None,
            top1_changed_share=None,
        )
    else:
        figures.update(drift(current, previous))
    return figures


def check_thresholds(figures: dict, config: MonitorConfig) -> list[Finding]:
    """The thresholds crossed; a figure that is None (no previous run) is not checked."""
    findings = []
    for figure, (suffix, bound) in RULES.items():
        value = figures.get(figure)
        if value is None or np.isnan(value):
            continue
        for level in ("fail", "warn"):
            threshold = getattr(config, f"{level}_{suffix}")
            if threshold is None:
                continue
            crossed = value < threshold if bound == "min" else value > threshold
            if crossed:
                findings.append(Finding(figure, float(value), level, bound, threshold))
                break  # a failure already says it all
    return findings


def previous_published(table_root: Path, run_date: date) -> tuple[date | None, pd.DataFrame | None]:
    """The latest published date of the lake table strictly before ``run_date``, and its
    ``user_id, rank, item_id`` rows."""
    from tasks.storage import lake

    earlier = [d for d in lake.published_dates(Path(table_root)) if d < run_date]
    if not earlier:
        return None, None
    rows = lake.read_table(Path(table_root), earlier[-1])[["user_id", "rank", "item_id"]]
    return earlier[-1], rows.astype({"user_id": "str", "rank": "int64", "item_id": "str"})


def failure_message(findings: list[Finding], previous_date: date | None) -> str:
    failed = [f for f in findings if f.level == "fail"]
    against = f" (previous run {previous_date})" if previous_date else ""
    return (
        "tonight's recommendations crossed monitor thresholds"
        + against
        + ": "
        + "; ".join(f.message for f in failed)
        + "; nothing was published and the previous tables keep serving; if the change is "
        "expected, relax the monitor.fail_* thresholds (config, RECPIPE__MONITOR__...) and "
        "re-run the same date"
    )


def monitor(
    scores_path: str,
    validated_path: str,
    table_root: str,
    run_date: date,
    config: MonitorConfig,
    workspace_root: str,
    parent_run_id: str,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
) -> dict:
    """Compute the figures, log them to the parent MLflow run, warn or fail on thresholds."""
    from tasks import tracking
    from tasks.storage.workspace import Workspace

    current = pd.read_parquet(scores_path, columns=["user_id", "rank", "item_id"])
    previous_date, previous = previous_published(Path(table_root), run_date)
    validated = pd.read_parquet(validated_path, columns=["item_id", "timestamp"])
    catalog = pd.Index(validated["item_id"].unique())
    newest = validated["timestamp"].max() if len(validated) else None
    figures = monitor_figures(current, previous, catalog, data_age_days(newest, run_date))
    del validated
    findings = check_thresholds(figures, config)

    client = tracking.client_for(Workspace.at(workspace_root))
    numeric = {f"monitor.{k}": float(v) for k, v in figures.items() if v is not None}
    tracking.log_metrics(client, parent_run_id, numeric)
    client.set_tag(
        parent_run_id,
        "monitor.previous_run_date",
        previous_date.isoformat() if previous_date else "",
    )
    client.set_tag(
        parent_run_id,
        "monitor.findings",
        "; ".join(f.message for f in findings)[:5000] or "none",
    )
    logger = logger or logging.getLogger(__name__)
    for finding in findings:
        if finding.level == "warn":
            logger.warning("monitor: %s", finding.message)
    if any(f.level == "fail" for f in findings):
        error = MonitorError(failure_message(findings, previous_date))
        error.figures = figures  # type: ignore[attr-defined]  # for the run summary
        error.findings = [{**asdict(f), "message": f.message} for f in findings]  # type: ignore[attr-defined]
        raise error
    logger.info(
        "monitor: coverage %.3f, gini %.3f, data %s day(s) old, mean Jaccard %s vs %s",
        figures["coverage"],
        figures["gini"],
        "n/a" if figures["data_age_days"] is None else f"{figures['data_age_days']:.0f}",
        "n/a" if figures["mean_jaccard"] is None else f"{figures['mean_jaccard']:.3f}",
        previous_date or "no previous run",
    )
    return {
        "figures": figures,
        "findings": [{**asdict(f), "message": f.message} for f in findings],
        "previous_run_date": previous_date.isoformat() if previous_date else None,
    }


@task(name="monitor", cache_policy=NO_CACHE)
def monitor_task(
    scores_path: str,
    validated_path: str,
    table_root: str,
    run_date: date,
    config: MonitorConfig,
    workspace_root: str,
    parent_run_id: str,
) -> dict:
    return monitor(
        scores_path,
        validated_path,
        table_root,
        run_date,
        config,
        workspace_root,
        parent_run_id,
        get_run_logger(),
    )
