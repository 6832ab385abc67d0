"""What the MLflow and Prefect web UIs show of recpipe's runs, and links into them.

MLflow 3.17.2's UI (read from the bundle of the installed package,
``mlflow/server/js/build/static/js``, and checked in headless Chromium with
``python -m flows.bench.mlflow_screenshot``):

* an experiment opens in the GenAI "Overview" unless the URL carries
  ``workflowType=machine_learning`` (or the browser remembers the "Model training"
  toggle). The tag ``mlflow.experimentKind = custom_model_development`` is what the UI
  reads when its GenAI/model-training toggle is off; in 3.17.2 the toggle is always on, so
  the tag alone does not change the landing page. recpipe sets it anyway (it labels the
  experiment as model development for the UI and for MLflow versions that read it);
* the runs table shows metric columns only when the viewer selected them; the selection
  lives in the browser's local storage and there is no server-side default. The one
  server-side hook is a saved (shared) view: an experiment tag
  ``mlflow.sharedViewState.<key>`` holding the view state (columns, order, grouping; what
  the UI's "Save as new view" writes), listed under the page's "Views" menu and applied
  when the runs page is opened with ``?viewStateShareKey=<key>``.

So every experiment recpipe uses carries both tags (``tag_experiment``); the view under
key ``recpipe`` groups runs by night and shows the ranking metrics evaluate logged
(``set_runs_view``), and the links recpipe builds (``experiment_url``, ``run_url``) carry
the URL parameters: an MLflow link printed without them opens on the GenAI overview.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
SHARED_VIEW_PREFIX = "mlflow.sharedViewState."
VIEW_KEY = "recpipe"
VIEW_NAME = "recpipe: models by ranking quality"
#: The runs table's columns, in order, for the metric names evaluate logs at cut-off ``k``.
VIEW_METRICS = ("ndcg", "recall", "hit", "map", "mrr", "coverage", "novelty")
#: Runs are grouped by this tag: the nightly parent run and every model run of a night carry it.
GROUP_TAG = "run_date"
DEFAULT_K = 10
#: Where a metric name's column lives: ``metrics.`ndcg_at_10``` (the UI's column ids).
ATTRIBUTE_COLUMNS = ("attributes.`Dataset`", "attributes.`Models`")
#: The UI's switch between its GenAI and model-training pages (see the module docstring).
WORKFLOW_PARAM = "workflowType=machine_learning"
#: Where the MLflow UI of the workspace's store is served, when a server runs for it.
MLFLOW_UI_URL_ENV = "MLFLOW_UI_URL"


def view_metric_keys(k: int = DEFAULT_K) -> list[str]:
    """The metric keys the runs view shows, as logged (``ndcg_at_10``, ...)."""
    return [f"{name}_at_{k}" for name in VIEW_METRICS] + ["train_seconds"]


def runs_view(metric_keys: list[str]) -> dict:
    """The view state of the experiment's runs table (the keys of the UI's own state).

    Runs grouped by their ``run_date`` tag: one group per night, open, listing the nightly
    parent run and each model's run side by side (nested under the parent they would stay
    hidden until expanded, and the shared state cannot expand rows), the group row showing
    the night's best figure of each metric. Columns: the metrics in ``metric_keys`` order
    first, so they sit beside the run names on a narrow screen (the data snapshot and
    logged model columns are wide), then the data snapshot and the logged model. Sort
    and filter stay the viewer's (the newest night first).
    """
    metrics = [f"metrics.`{key}`" for key in metric_keys]
    return {
        "selectedColumns": [*metrics, *ATTRIBUTE_COLUMNS],
        "columnOrder": [*metrics, *ATTRIBUTE_COLUMNS],
        "groupBy": {
            "aggregateFunction": "max",
            "groupByKeys": [{"mode": "tag", "groupByData": GROUP_TAG}],
        },
    }


def view_tag_value(metric_keys: list[str], created_ms: int | None = None) -> str:
    """The tag value: the UI's saved-view envelope around the view state as JSON text."""
    now = int(time.time() * 1000)
    return json.dumps(
        {
            "name": VIEW_NAME,
            "createdAt": created_ms or now,
            "updatedAt": now,
            "state": json.dumps(runs_view(metric_keys)),
        }
    )


def view_metric_keys_of(tag_value: str | None) -> list[str] | None:
    """The metric keys a view tag shows, or None when the tag is missing or not ours."""
    if not tag_value:
        return None
    try:
        columns = json.loads(json.loads(tag_value)["state"])["selectedColumns"]
    except (ValueError, KeyError, TypeError):
        return None
    prefix = "metrics.`"
    return [c[len(prefix) : -1] for c in columns if c.startswith(prefix)]


def tag_experiment(client: Any, experiment_id: str, tags: dict[str, str]) -> None:
    """The kind tag (opens on runs, not the GenAI overview) and the runs view, unless the
    experiment already carries them (``tags``: its current tags)."""
    if tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    current = tags.get(SHARED_VIEW_PREFIX + VIEW_KEY)
    keys = view_metric_keys_of(current)
    if keys is None:
        client.set_experiment_tag(
            experiment_id, SHARED_VIEW_PREFIX + VIEW_KEY, view_tag_value(view_metric_keys())
        )
    elif _column_order(current) != runs_view(keys)["columnOrder"]:  # an older layout
        client.set_experiment_tag(
            experiment_id, SHARED_VIEW_PREFIX + VIEW_KEY, view_tag_value(keys)
        )


def _column_order(tag_value: str | None) -> list[str] | None:
    try:
        return list(json.loads(json.loads(tag_value or "")["state"])["columnOrder"])
    except (ValueError, KeyError, TypeError):
        return None


def set_runs_view(client: Any, experiment_id: str, metric_names: list[str]) -> None:
    """Point the runs view at the ranking metrics actually logged (``ndcg@5``, ... as
    evaluate names them); nothing is written when the view already shows them."""
    logged = {name.replace("@", "_at_") for name in metric_names}  # as runs.mlflow_key
    wanted = [
        key
        for name in VIEW_METRICS
        for key in sorted(k for k in logged if k.startswith(f"{name}_at_"))
    ] + ["train_seconds"]
    tags = client.get_experiment(experiment_id).tags
    current = tags.get(SHARED_VIEW_PREFIX + VIEW_KEY)
    if view_metric_keys_of(current) == wanted:
        return
    try:
        created = int(json.loads(current)["createdAt"]) if current else None
    except (ValueError, KeyError, TypeError):
        created = None
    client.set_experiment_tag(
        experiment_id, SHARED_VIEW_PREFIX + VIEW_KEY, view_tag_value(wanted, created)
    )


# -- links ------------------------------------------------------------------------------
def mlflow_ui_url(tracking_uri: str | None = None) -> str | None:
    """The MLflow UI's base URL: ``MLFLOW_UI_URL`` when set (e.g. where ``mlflow ui`` serves
    the workspace's store), else the tracking URI when it is a server; None otherwise."""
    url = os.environ.get(MLFLOW_UI_URL_ENV, "").strip()
    if url:
        return url.rstrip("/")
    if tracking_uri and tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return None


def experiment_url(base_url: str, experiment_id: str) -> str:
    """The experiment's runs table in recpipe's view: the ``workflowType`` parameter opens
    the model-training pages (not the GenAI overview), ``viewStateShareKey`` the view."""
    return (
        f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs"
        f"?{WORKFLOW_PARAM}&viewStateShareKey={VIEW_KEY}"
    )


def run_url(base_url: str, experiment_id: str, run_id: str) -> str:
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?{WORKFLOW_PARAM}"


def prefect_flow_run_url(flow_run_id: str) -> str | None:
    """The flow run's page in the Prefect UI, when its address is known (``PREFECT_UI_URL``,
    set or derived from a server's ``PREFECT_API_URL``); None on a temporary server."""
    try:
        from prefect.utilities.urls import url_for

        return url_for("flow-run", obj_id=flow_run_id) or None
    except Exception:  # noqa: BLE001 - a link is never worth failing a run
        return None
