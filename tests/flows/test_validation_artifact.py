"""The validation summary becomes a Prefect artifact of the run, read back from the API."""

from __future__ import annotations

import re


def test_validation_artifact_is_created_only_inside_a_run(prefect_harness) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.context import get_run_context

    from tasks.validate import publish_artifact
    from tasks.validation.checks import ARTIFACT_KEY

    assert publish_artifact("# outside any run") is False

    @flow(name="publishes-a-validation-artifact")
    def publishes() -> tuple[str, bool]:
        return str(get_run_context().flow_run.id), publish_artifact("# validation: 5 rows")

    flow_run_id, created = publishes()
    assert created is True
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    assert [(a.key, a.type, a.data) for a in artifacts] == [
        (ARTIFACT_KEY, "markdown", "# validation: 5 rows")
    ]
    assert re.fullmatch(r"[a-z0-9-]+", ARTIFACT_KEY)
