"""The ``recpipe-forget`` flow: ``recpipe forget`` as a Prefect flow, to trigger from the
Prefect UI or API (deployment ``recpipe-forget/<schedule.deployment>``, served with the
nightly by ``recpipe serve``).

The ids arrive as a flow parameter, which Prefect stores: once the erasure is done the
flow run's parameters are replaced by the users' tombstones through the API, and the
Prefect database, when it is a local SQLite file, is scrubbed with the other stores
(tasks/forget/stores.py). Nothing the flow logs or returns holds an id.
"""

# No `from __future__ import annotations`: Prefect builds the flow's parameter model from
# these annotations.
from typing import Any

from prefect import flow, get_run_logger

from tasks.config import PipelineConfig, load_config

FLOW_NAME = "recpipe-forget"
WAIT_SECONDS = 600.0


@flow(name=FLOW_NAME, log_prints=False)
def forget_flow(users: list[str], config: PipelineConfig | None = None) -> dict:
    """Forget ``users`` everywhere the workspace holds them (see tasks/forget/run.py)."""
    from tasks.forget.run import forget_users
    from tasks.storage.locks import holder_info
    from tasks.storage.workspace import Workspace

    config = config or load_config()
    ws = Workspace.at(config.workspace)
    run_id = _flow_run_id()
    summary = forget_users(
        ws.root,
        config.publish.url(ws.database_url),
        users,
        config.tracking.registered_model,
        wait_seconds=max(config.lock.wait_seconds, WAIT_SECONDS),
        holder=holder_info(run_id, command=FLOW_NAME),
        tables=(config.publish.table, config.publish.similar_table),
    )
    redacted = _redact_parameters(run_id, summary["users"], config)
    get_run_logger().info(
        "forgot %d user(s) (%s); model versions trained on their data: %s; parameters "
        "redacted: %s; %s s",
        len(summary["users"]),
        ", ".join(summary["users"]),
        ", ".join(summary["affected_versions"]) or "none",
        redacted,
        summary["seconds"],
    )
    return summary


def _flow_run_id() -> Any:
    from prefect.runtime import flow_run

    return flow_run.id


def _redact_parameters(run_id: Any, tombstones: list[str], config: PipelineConfig) -> bool:
    """Replace this run's stored parameters: the ids become their tombstones."""
    if run_id is None:
        return False
    from prefect.client.orchestration import get_client

    from flows.parameters import deployment_parameters

    parameters = {"users": tombstones, **deployment_parameters(config)}
    with get_client(sync_client=True) as client:
        client.update_flow_run(run_id, parameters=parameters)
    return True
