"""The publishing context of a registered version, kept on its MLflow run.

Every publish records what the served model needs to answer with the table's rows
(:mod:`tasks.scoring.serving`): the night logs its layer to the run of the version it
published from, at ``serving/<run date>/<night's run id>/``, and once its tables are
published points the run's tag ``recpipe.serving`` at it. A refresh that scores with that
same version logs its layer under it, at ``.../refresh/<published at>-<run id>/``, after
its rows are published. A layer's ``context.json`` is uploaded last: the served model
(tasks/tracking/pyfunc_model.py) reads only complete layers.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from tasks.scoring.serving import REFRESH_FOLDER, SERVING_TAG


def night_path(run_date: date, run_id: str) -> str:
    return f"serving/{run_date.isoformat()}/{run_id}"


def log_layer(client: Any, model_run: str, layer: Path, artifact_path: str) -> None:
    """Upload the layer folder to ``artifact_path`` of ``model_run``, ``context.json``
    last."""
    from tasks.scoring.serving import CONTEXT_FILE

    for path in sorted(layer.iterdir()):
        if path.is_file() and path.name != CONTEXT_FILE:
            client.log_artifact(model_run, str(path), artifact_path)
    client.log_artifact(model_run, str(layer / CONTEXT_FILE), artifact_path)


def point_at(client: Any, model_run: str, artifact_path: str) -> bool:
    """Make the night's layer at ``artifact_path`` the one the served model answers from,
    unless the tag already names a later run date (a backfilled older date leaves the
    newest date's context served); whether it moved."""
    current = client.get_run(model_run).data.tags.get(SERVING_TAG)
    if current and _run_date(current) > _run_date(artifact_path):
        return False
    client.set_tag(model_run, SERVING_TAG, artifact_path)
    return True


def _run_date(artifact_path: str) -> str:
    """The run date (ISO text) of a night layer's path ``serving/<date>/<run id>``."""
    return artifact_path.split("/")[1]


def log_refresh_layer(
    client: Any, model_run: str, run_date: date, layer: Path, name: str
) -> str | None:
    """Upload a refresh's layer under the night's layer of ``run_date`` on ``model_run``;
    its artifact path, or None when the version's served context is not that night's (the
    refresh scored with a version the night did not publish from: its served copy answers
    from the events given in requests)."""
    night = client.get_run(model_run).data.tags.get(SERVING_TAG)
    if not night or not night.startswith(f"serving/{run_date.isoformat()}/"):
        return None
    path = f"{night}/{REFRESH_FOLDER}/{name}"
    log_layer(client, model_run, layer, path)
    return path
