"""The nightly flow: ingest -> validate -> features -> train -> evaluate -> promote -> score
-> check -> monitor -> publish -> report.

Wiring only. Each step is a method of :class:`flows.night.Night` (the run context) that
calls one stage's function(s) in ``tasks/``, here each as its Prefect task
(``flows.steps.AsTasks``); stages hand each other typed results that point at files in
the workspace. Around the stages: the run date's lock from ingest to publish, recovery of a
publish a killed run left half-done, a skip cache for unchanged inputs, one MLflow
parent run per night (created first, so any failure is recorded) and a run summary as
Prefect artifacts, also when the run fails.
"""

# No `from __future__ import annotations`: Prefect builds the flow's parameter model from
# these annotations, also when it loads this file from a deployment's entrypoint.
import uuid
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from prefect import flow, get_run_logger

from tasks.config import PipelineConfig, load_config

if TYPE_CHECKING:
    from flows.night import Night


@flow(name="recpipe-nightly", log_prints=True)
def nightly(
    config: PipelineConfig | None = None, run_date: date | None = None, as_of: bool = False
) -> dict:
    """Turn the night's interactions into a fresh, published recommendations table.

    ``as_of`` (backfills): use only events before the day after ``run_date``.
    """
    from flows.night import Night
    from flows.steps import AsTasks

    config = config or load_config()
    logger = get_run_logger()
    day = run_date or datetime.now(UTC).date()
    night = Night.open(config, day, as_of, _flow_run_id(), logger, AsTasks())
    _warn_if_dask_is_ignored(config, logger)
    return run_stages(night)


def run_stages(night: "Night") -> dict:
    """Every stage of an opened night, in order (the nightly flow runs them as Prefect
    tasks; any caller may run them directly); the run summary."""
    with night.running():
        with night.locks():
            night.recover()
            ingest = night.ingest()
            night.validate(ingest)
            features = night.features()
            results = night.train_and_evaluate(features, ingest)
            promotion = night.promote(results, features)
            scored = night.score(promotion, ingest)
            scored = night.check(scored, ingest)
            night.monitor(scored)
            night.publish(scored, promotion, ingest)
        night.report(results, scored)
    return night.out


def _flow_run_id() -> str:
    from prefect.runtime import flow_run

    return str(flow_run.id or uuid.uuid4())


def _warn_if_dask_is_ignored(config: PipelineConfig, logger: Any) -> None:
    from prefect.context import get_run_context

    runner = type(getattr(get_run_context(), "task_runner", None)).__name__
    if config.runner.kind == "dask" and runner != "DaskTaskRunner":
        logger.warning(
            "runner.kind is 'dask' but this flow run's task runner is %s: the scoring shards "
            "run in this process. Start the flow through recpipe run/backfill, or "
            "flows.nightly.nightly_flow_for(config), to run them on Dask.",
            runner,
        )


def task_runner_for(config: PipelineConfig) -> Any:
    """The task runner ``config.runner`` asks for (None: the flow's default)."""
    if config.runner.kind == "local":
        return None
    from prefect_dask import DaskTaskRunner

    if config.runner.address:
        return DaskTaskRunner(address=config.runner.address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": config.runner.workers,
            "threads_per_worker": config.runner.threads_per_worker,
            "processes": True,
            "dashboard_address": None,
        }
    )


def nightly_flow_for(config: PipelineConfig) -> Any:
    """``nightly`` on the task runner the config asks for."""
    runner = task_runner_for(config)
    return nightly if runner is None else nightly.with_options(task_runner=runner)
