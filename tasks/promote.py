"""Promote: register tonight's models and let the gate decide who becomes ``champion``.

The gate: tonight's best non-baseline model (the challenger) is promoted when

* its primary metric beats the popularity baseline trained tonight, and
* it is at least the current champion's metric minus ``promotion_tolerance``,
  the champion being re-scored on tonight's hold-out (same users, same items,
  same scoring path; a champion that is one of tonight's models, reused from an
  earlier run of the date, keeps the figures it was just evaluated with).

With no champion yet, the best model of the night (baseline included) is
promoted so that there is always something to serve. Every model is registered
as a new version either way; the decision, the figures and the reason are
tagged on the challenger's run, on the nightly parent run and on the version.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.config import EvaluateConfig

BASELINE = "popularity"


@dataclass(frozen=True)
class Decision:
    promote: bool
    challenger: str
    metric: str
    challenger_value: float
    champion_value: float | None
    baseline_value: float | None
    reason: str


def _value(result: dict, key: str) -> float:
    value = result["metrics"].get(key, float("nan"))
    return value if math.isfinite(value) else -math.inf


def pick_challenger(results: list[dict], key: str, baseline: str = BASELINE) -> dict:
    """Best model by ``key`` among non-baselines (ties keep the earlier); baseline if alone."""
    if not results:
        raise ValueError("promote: no trained models to choose from")
    candidates = [r for r in results if r["model"] != baseline] or results
    return max(candidates, key=lambda r: _value(r, key))


def decide(
    challenger: str,
    challenger_value: float,
    champion_value: float | None,
    baseline_value: float | None,
    tolerance: float,
    metric: str,
) -> Decision:
    """The promotion rule, as a pure function of the figures."""

    def fmt(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    if not math.isfinite(challenger_value):
        promote, why = False, f"{challenger} has no finite {metric}"
    elif champion_value is None:
        promote, why = True, f"no champion yet; {challenger} {metric}={fmt(challenger_value)}"
    elif (
        challenger != BASELINE and baseline_value is not None and challenger_value <= baseline_value
    ):
        promote, why = (
            False,
            (
                f"{challenger} {metric}={fmt(challenger_value)} does not beat the popularity baseline "
                f"{fmt(baseline_value)}"
            ),
        )
    elif challenger_value < champion_value - tolerance:
        promote, why = (
            False,
            (
                f"{challenger} {metric}={fmt(challenger_value)} is below the champion's "
                f"{fmt(champion_value)} minus tolerance {tolerance}"
            ),
        )
    else:
        promote, why = (
            True,
            (
                f"{challenger} {metric}={fmt(challenger_value)} >= champion {fmt(champion_value)} "
                f"- {tolerance} and beats popularity {fmt(baseline_value)}"
            ),
        )
    return Decision(
        promote, challenger, metric, challenger_value, champion_value, baseline_value, why
    )


def outcome(promotion: dict) -> str:
    """``kept`` (the challenger is the champion already), ``promoted`` or ``rejected``."""
    if promotion.get("already_champion"):
        return "kept"
    return "promoted" if promotion.get("promote") else "rejected"


@task(name="promote", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def promote_task(
    results: list[dict],
    features_dir: str,
    config: EvaluateConfig,
    registered_name: str,
    workspace_root: str,
    parent_run_id: str,
) -> dict:
    """Register every model of the night and decide who serves (see the module docstring)."""
    primary_metric, k, tolerance = config.primary_metric, config.k, config.promotion_tolerance
    from tasks import tracking
    from tasks.evaluate import evaluate_bundle, holdout_from_snapshot
    from tasks.storage.workspace import Workspace
    from tasks.tracking import registry

    key = f"{primary_metric}@{k}"
    client = tracking.client_for(Workspace.at(workspace_root))
    versions = {
        r["model"]: registry.register_version(
            client,
            r["model_uri"],
            registered_name,
            r["run_id"],
            tags={
                "model": r["model"],
                **{tracking.mlflow_key(m): f"{v:.6f}" for m, v in r["metrics"].items()},
            },
        )
        for r in results
    }
    challenger = pick_challenger(results, key)
    baseline = next((r for r in results if r["model"] == BASELINE), None)

    champion_value, champion_ver, champion_metrics = (
        None,
        registry.champion_version(client, registered_name),
        None,
    )
    if champion_ver is not None:
        champion_run = client.get_model_version(registered_name, champion_ver).run_id
        tonight = next((r for r in results if r["run_id"] == champion_run), None)
        if tonight is not None:  # a reused model: scored on this very hold-out already
            champion_metrics = dict(tonight["metrics"])
        else:
            champion, _ = tracking.load_champion(client, registered_name)
            holdout = holdout_from_snapshot(features_dir)
            champion_metrics = evaluate_bundle(
                champion.model, champion.users, champion.items, holdout, k
            )
        champion_value = champion_metrics[key]
        tracking.log_metrics(
            client, parent_run_id, {f"champion.{m}": v for m, v in champion_metrics.items()}
        )

    decision = decide(
        challenger["model"],
        _value(challenger, key),
        champion_value,
        _value(baseline, key) if baseline else None,
        tolerance,
        key,
    )
    version = versions[challenger["model"]]
    already = decision.promote and version == champion_ver  # a re-run that reused it
    if already:
        decision = replace(
            decision,
            reason=f"{challenger['model']} v{version} is the champion already; " + decision.reason,
        )
    tags = {
        "promotion.decision": outcome({"already_champion": already, "promote": decision.promote}),
        "promotion.reason": decision.reason,
        "promotion.challenger": f"{challenger['model']} v{version}",
        "promotion.challenger_value": f"{decision.challenger_value:.6f}",
        "promotion.champion_value": "" if champion_value is None else f"{champion_value:.6f}",
        "promotion.champion_version": champion_ver or "",
        "promotion.baseline_value": ""
        if decision.baseline_value is None
        else f"{decision.baseline_value:.6f}",
    }
    for tag, value in tags.items():
        client.set_tag(challenger["run_id"], tag, value)
        client.set_tag(parent_run_id, tag, value)
        client.set_model_version_tag(registered_name, version, tag, value)
    # The alias itself moves only once this run's tables commit (tasks/publish.py).
    serving = version if decision.promote else champion_ver
    return {
        **asdict(decision),
        "already_champion": already,
        "registered_name": registered_name,
        "challenger_version": version,
        "previous_champion": champion_ver,
        "champion_version": serving,
        "serving_version": serving,
        "move_alias": bool(decision.promote and not already),
        "versions": versions,
    }


def move_champion_after_publish(
    workspace_root: Path | str, move: Any, run_date: date, newest_published: date | None
) -> str:
    """Point ``champion`` at the version a run's tables were published with, once they
    committed; never for a run date older than the newest published one (a backfill
    records its decision but leaves the live alias alone). What happened, in words."""
    from tasks import tracking
    from tasks.storage.workspace import Workspace
    from tasks.tracking import registry

    if newest_published is not None and run_date < newest_published:
        return (
            f"alias left on the live champion: {run_date} is older than the newest "
            f"published date {newest_published}"
        )
    client = tracking.client_for(Workspace.at(workspace_root))
    if registry.champion_version(client, move.registered_name) == move.version:
        return f"champion is v{move.version}"
    registry.set_champion(client, move.registered_name, move.version, move.reason)
    return f"champion moved to v{move.version}"
