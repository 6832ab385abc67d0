"""Operating recpipe: serve on a schedule, trigger by hand, bench re-runs.

The CLI (``flows/cli.py``) parses options and calls these; heavy imports stay inside.
``recpipe status`` is in ``flows/status.py``.
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Any

from tasks.config import PipelineConfig
from tasks.errors import ConfigError, RecpipeError

FLOW_NAME = "recpipe-nightly"


class ServerError(RecpipeError):
    """No Prefect server is configured or reachable for a command that needs one."""


# -- a real Prefect server ---------------------------------------------------------------
def require_server(command: str) -> str:
    """The configured Prefect API URL, checked to answer; refuse clearly without one."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        raise ServerError(
            f"'recpipe {command}' needs a Prefect server, and PREFECT_API_URL is not set: "
            "schedules never fire on the temporary server that 'recpipe run' starts for "
            "itself; start one with 'prefect server start' (keep it running, e.g. as a "
            "service) and set PREFECT_API_URL=http://127.0.0.1:4200/api (environment, or "
            "'prefect config set PREFECT_API_URL=...')"
        )
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        problem = client.api_healthcheck()
    if problem is not None:
        raise ServerError(
            f"'recpipe {command}': the Prefect server at PREFECT_API_URL={url} does not answer "
            f"({type(problem).__name__}: {problem}); start it with 'prefect server start' or "
            "fix PREFECT_API_URL"
        )
    return url


def deployment_parameters(config: PipelineConfig) -> dict:
    """What a served deployment pins: the whole resolved config (TOML, env vars, options)."""
    return {"config": config.model_dump(mode="json", by_alias=True)}


def serve(config: PipelineConfig) -> None:
    """Register deployment ``recpipe-nightly/<schedule.deployment>`` and run its flow runs.

    Blocks until interrupted; Prefect then pauses the schedule until it is served again.
    ``global_limit=1``: runs of the deployment queue behind each other instead of running
    side by side (the per-date lock would refuse a second run of the same date anyway).
    """
    from prefect.schedules import Cron

    from flows.nightly import nightly

    url = require_server("serve")
    schedule = config.schedule
    print(
        f"serving deployment '{FLOW_NAME}/{schedule.deployment}' on {url}: cron "
        f"'{schedule.cron}' ({schedule.timezone}), workspace {config.workspace}; trigger a run "
        f"with 'recpipe trigger' or 'prefect deployment run {FLOW_NAME}/{schedule.deployment}'; "
        "Ctrl-C stops serving and pauses the schedule",
        flush=True,
    )
    nightly.serve(
        name=schedule.deployment,
        schedules=[Cron(schedule.cron, timezone=schedule.timezone)],
        parameters=deployment_parameters(config),
        global_limit=1,
        description="recpipe nightly batch recommender (served by 'recpipe serve')",
        tags=["recpipe"],
        print_starting_message=False,
    )


def trigger(
    config: PipelineConfig,
    run_date: date | None,
    wait: bool,
    timeout: float | None = None,
    as_of: bool = False,
) -> Any:
    """Start a run of the served deployment now; with ``wait``, until it ends."""
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    require_server("trigger")
    name = f"{FLOW_NAME}/{config.schedule.deployment}"
    parameters: dict[str, Any] = {}
    if run_date is not None:
        parameters["run_date"] = run_date.isoformat()
    if as_of:
        parameters["as_of"] = True
    try:
        return run_deployment(
            name,
            parameters=parameters,
            timeout=timeout if wait else 0,  # None: wait until it ends
            as_subflow=False,
            poll_interval=2,
        )
    except ObjectNotFound:
        raise ServerError(
            f"no deployment '{name}' on the Prefect server; register it with 'recpipe serve' "
            "(which also runs it) or 'prefect deploy' (prefect.yaml) first"
        ) from None


# -- bench rerun ------------------------------------------------------------------------------
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

    keras_models = {"mult_dae", "mult_vae", "gru4rec", "caser", "two_tower"}
    if keras_models & set(config.train.models):
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
