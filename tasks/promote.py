"""Promote: pick the best evaluated model, register it, point alias ``champion`` at it."""

from __future__ import annotations

import math

from prefect import task
from prefect.cache_policies import NO_CACHE


def choose_champion(results: list[dict], primary_metric: str, k: int) -> dict:
    """The result with the highest ``primary_metric@k``; ties keep the earlier model.

    Raises ValueError when no model has a finite value of the metric.
    """
    key = f"{primary_metric}@{k}"
    best, best_value = None, -math.inf
    for result in results:
        value = result["metrics"].get(key, float("nan"))
        if math.isfinite(value) and value > best_value:
            best, best_value = result, value
    if best is None:
        found = {r["model"]: r["metrics"].get(key) for r in results}
        raise ValueError(f"promote: no model has a finite {key}; got {found}")
    return best


@task(name="promote", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def promote_task(
    results: list[dict],
    primary_metric: str,
    k: int,
    registered_name: str,
    workspace_root: str,
    parent_run_id: str,
) -> dict:
    from tasks import tracking
    from tasks.workspace import Workspace

    best = choose_champion(results, primary_metric, k)
    key = f"{primary_metric}@{k}"
    client = tracking.client_for(Workspace.at(workspace_root))
    reason = f"highest {key} tonight: {best['model']} {best['metrics'][key]:.4f} vs " + ", ".join(
        f"{r['model']} {r['metrics'][key]:.4f}" for r in results if r is not best
    )
    version = tracking.register_champion(
        client,
        best["model_uri"],
        registered_name,
        best["run_id"],
        tags={"model": best["model"], tracking.mlflow_key(key): f"{best['metrics'][key]:.6f}"},
    )
    for tag, value in {
        "promotion.decision": "promoted",
        "promotion.reason": reason,
        "promotion.version": version,
    }.items():
        client.set_tag(best["run_id"], tag, value)
        client.set_tag(parent_run_id, tag, value)
    return {
        "model": best["model"],
        "version": version,
        "registered_name": registered_name,
        "metric": key,
        "value": best["metrics"][key],
        "reason": reason,
    }
