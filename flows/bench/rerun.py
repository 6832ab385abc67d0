"""Re-run benchmark: a cold run, a cached re-run and a cached re-run with retraining, on
unchanged demo data; how much of a cold run a re-run costs."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

from tasks.config import PipelineConfig
from tasks.errors import ConfigError


def bench_rerun(config: PipelineConfig, run_date: date) -> dict:
    """Cold run, cached re-run, and cached re-run reusing the models, on unchanged data.

    Imports and the temporary Prefect server are warmed before timing, so the figures
    compare pipeline work, not process start-up.
    """
    from prefect import flow

    from flows.nightly import nightly

    workspace = Path(config.workspace)
    if workspace.exists() and any(p.is_file() for p in workspace.rglob("*")):
        raise ConfigError(
            f"bench rerun needs an empty workspace (the cold run must find nothing cached); "
            f"{config.workspace} is not empty; pass --workspace to a new folder"
        )

    import great_expectations  # noqa: F401
    import mlflow  # noqa: F401

    from models import KERAS_MODELS

    if KERAS_MODELS & set(config.train.models):
        import tensorflow  # noqa: F401

    @flow(name="recpipe-bench-warmup")
    def warmup() -> int:
        return 1

    warmup()
    runs = {}
    for label, reuse in (("cold", True), ("cached", True), ("cached, --retrain", False)):
        cfg = config.model_copy(
            update={
                "cache": config.cache.model_copy(update={"enabled": True, "reuse_models": reuse})
            }
        )
        start = time.perf_counter()
        summary = nightly(config=cfg, run_date=run_date)
        summary["wall_seconds"] = round(time.perf_counter() - start, 2)
        runs[label] = summary
    return runs


def bench_report(runs: dict, config: PipelineConfig) -> str:
    labels = list(runs)
    stages = list(dict.fromkeys(s for r in runs.values() for s in r["stage_seconds"]))
    demo = config.ingest.demo
    lines = [
        (
            f"recpipe bench rerun: demo data {demo.n_users} users x {demo.n_items} items, "
            f"models {','.join(config.train.models)}, workspace {config.workspace}"
        ),
        (
            "imports (tensorflow, great_expectations, mlflow) and the temporary Prefect server "
            "were warmed before timing"
        ),
        "",
        f"{'stage':<12}" + "".join(f"{label:>22}" for label in labels),
    ]
    for stage in stages:
        cells = []
        for r in runs.values():
            seconds = r["stage_seconds"].get(stage)
            mark = ""
            if stage in r["cached_stages"]:
                mark = " (skip)"
            elif stage == "train" and any(k.startswith("train-") for k in r["cached_stages"]):
                mark = " (reuse)"
            cells.append(f"{'-' if seconds is None else f'{seconds:.2f}'}{mark}".rjust(22))
        lines.append(f"{stage:<12}" + "".join(cells))
    lines.append(
        f"{'flow total':<12}" + "".join(f"{r['total_seconds']:>22.2f}" for r in runs.values())
    )
    lines.append(f"{'wall':<12}" + "".join(f"{r['wall_seconds']:>22.2f}" for r in runs.values()))
    cold = runs["cold"]["total_seconds"]
    lines.append("")
    for label in labels[1:]:
        ratio = runs[label]["total_seconds"] / cold
        verdict = "meets" if ratio <= 0.2 else "misses"
        target = "" if "retrain" in label else f" ({verdict} the target <= 0.20)"
        lines.append(f"{label} / cold = {ratio:.2f}{target}")
    cold_stages = runs["cold"]["stage_seconds"]
    retrain = cold_stages.get("train", 0) + cold_stages.get("evaluate", 0)
    lines.append(
        f"training + evaluation take {retrain:.1f} s of the cold {cold:.1f} s; a re-run reuses "
        "models trained from identical features, catalog, settings and code unless --retrain"
    )
    return "\n".join(lines)
