"""Operating recpipe: serve on a schedule, trigger by hand, bench re-runs.

The CLI (``flows/cli/``) parses options and calls these; heavy imports stay inside.
``recpipe status`` is in ``flows/status.py``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flows.parameters import deployment_parameters
from tasks.config import PipelineConfig
from tasks.errors import RecpipeError

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


def serve(config: PipelineConfig) -> None:
    """Register deployments ``recpipe-nightly/<schedule.deployment>``,
    ``recpipe-forget/<schedule.deployment>`` (run on request) and, when a landing folder is
    configured, ``recpipe-refresh/<refresh.deployment>``, and run their flow runs.

    Blocks until interrupted; Prefect then pauses the schedules until they are served
    again. ``concurrency_limit=1``: runs of a deployment queue behind each other instead of
    running side by side (the per-date lock would refuse a second run of the same date
    anyway; a refresh waits behind, or skips, the nightly of its date).
    """
    from prefect import serve as serve_deployments
    from prefect.schedules import Cron

    from flows.nightly import nightly

    url = require_server("serve")
    schedule = config.schedule
    parameters = deployment_parameters(config)
    print(
        f"serving deployment '{FLOW_NAME}/{schedule.deployment}' on {url}: cron "
        f"'{schedule.cron}' ({schedule.timezone}), workspace {config.workspace}; trigger a run "
        f"with 'recpipe trigger' or 'prefect deployment run {FLOW_NAME}/{schedule.deployment}'; "
        "Ctrl-C stops serving and pauses the schedule",
        flush=True,
    )
    deployments = [
        nightly.to_deployment(
            name=schedule.deployment,
            schedules=[Cron(schedule.cron, timezone=schedule.timezone)],
            parameters=parameters,
            concurrency_limit=1,
            description="recpipe nightly batch recommender (served by 'recpipe serve')",
            tags=["recpipe"],
        ),
        forget_deployment(config),
    ]
    refresh = refresh_deployment(config, parameters)
    if refresh is not None:
        deployments.append(refresh)
    serve_deployments(*deployments, print_starting_message=False)


def refresh_deployment(config: PipelineConfig, parameters: dict) -> Any:
    """The refresh's deployment on its own schedule (``[refresh]``), or None when
    ``refresh.serve`` is off or no landing folder is configured."""
    from datetime import timedelta

    from prefect.schedules import Cron, Interval

    from flows.refresh import FLOW_NAME as REFRESH_FLOW
    from flows.refresh import refresh

    settings = config.refresh
    folder = settings.path or (
        config.ingest.files.path if config.ingest.source == "landing" else None
    )
    if not settings.serve or folder is None:
        return None
    if settings.cron:
        when = Cron(settings.cron, timezone=config.schedule.timezone)
        said = f"cron '{settings.cron}'"
    else:
        when = Interval(timedelta(minutes=settings.interval_minutes))
        said = f"every {settings.interval_minutes:g} min"
    print(
        f"serving deployment '{REFRESH_FLOW}/{settings.deployment}': {said}, landing folder "
        f"{folder}",
        flush=True,
    )
    return refresh.to_deployment(
        name=settings.deployment,
        schedules=[when],
        parameters=parameters,
        concurrency_limit=1,
        description="recpipe intraday refresh of the users who just acted",
        tags=["recpipe"],
    )


def forget_deployment(config: PipelineConfig) -> Any:
    """Deployment ``recpipe-forget/<schedule.deployment>``: no schedule, run on request
    from the UI or API with parameter ``users`` (a list of ids; redacted once done)."""
    from flows.forget import FLOW_NAME as FORGET
    from flows.forget import forget_flow

    return forget_flow.to_deployment(
        name=config.schedule.deployment,
        parameters=deployment_parameters(config),
        concurrency_limit=1,
        description=(
            f"forget users everywhere the workspace holds them; run '{FORGET}/"
            f"{config.schedule.deployment}' with parameter users=[...]"
        ),
        tags=["recpipe", "privacy"],
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


def stored_summary(flow_run_id: Any) -> str | None:
    """The run summary flow run ``flow_run_id`` stored on the Prefect server (Markdown
    artifact ``recpipe-run-summary``, written by every nightly run, also a failed one:
    tasks/report.py); None when it stored none.

    ``trigger --wait`` prints it: the flow run ran in another process (``serve``, a worker),
    maybe on another machine, and its return value is not persisted, but its artifacts
    are on the server this command already talks to.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )
    from prefect.client.schemas.sorting import ArtifactSort

    from tasks.report import SUMMARY_KEY

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[SUMMARY_KEY]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            ),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    return str(found[0].data) if found and found[0].data else None


# -- bench rerun ------------------------------------------------------------------------------
