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

import shutil
from datetime import date
from pathlib import Path
from typing import Any

SERVING_TAG = "recpipe.serving"
REFRESH_FOLDER = "refresh"


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


def point_at(client: Any, model_run: str, artifact_path: str) -> None:
    """Make the night's layer at ``artifact_path`` the one the served model answers from."""
    client.set_tag(model_run, SERVING_TAG, artifact_path)


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


def record_night(
    workspace_root: str,
    registered_name: str,
    version: str,
    layer_dir: Path,
    *,
    run: dict,
    model_name: str,
    config: Any,
    scores_dir: Path,
    validated_path: Path,
    items_path: str | None,
    positive: tuple[str, float] | None,
) -> tuple[str, str]:
    """Write the night's layer (tasks/scoring/serving.py) to ``layer_dir`` from its scores
    folder and validated events, and upload it to the run of ``version`` (the local copy
    is removed once uploaded);
    ``(that run, the layer's artifact path)`` (:func:`point_at` makes it the served one once
    the tables are published)."""
    from tasks.refresh.rescore import newest_event
    from tasks.scoring.serving import write_layer
    from tasks.storage.workspace import Workspace
    from tasks.tracking.runs import client_for

    write_layer(
        layer_dir,
        kind="night",
        run=run,
        model_name=model_name,
        config=config,
        history=validated_path,
        items_path=items_path,
        statistics_dir=scores_dir,
        newest=newest_event(validated_path),
        positive=positive,
    )
    client = client_for(Workspace.at(workspace_root))
    model_run = client.get_model_version(registered_name, version).run_id
    path = night_path(run["run_date"], run["run_id"])
    log_layer(client, model_run, layer_dir, path)
    shutil.rmtree(layer_dir, ignore_errors=True)
    return model_run, path
