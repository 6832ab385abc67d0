"""MLflow as recpipe uses it, one module per concern:

* ``runs``: the workspace's store, experiments, parent/child runs, params, metrics,
  logging and loading models;
* ``registry``: versions, the ``champion`` alias and its history;
* ``pyfunc_model``: the MLflow pyfunc wrapper that ships with every model;
* ``plots``: the figures logged to runs;
* ``ui``: what MLflow's and Prefect's web pages show of the runs, and links into them;
* ``store``: the store's health check and backups.

``from tasks import tracking`` gives the run-level API below (``tracking.client_for``,
``tracking.log_metrics``, ...); the other modules are imported by name.
"""

from tasks.tracking.runs import (
    StoreError,
    champion_version_or_fail,
    client_for,
    ensure_experiment,
    fingerprint,
    flatten,
    guard_store,
    has_published_output,
    load_champion,
    load_model_version,
    log_bundle_model,
    log_curves,
    log_dataset,
    log_figure,
    log_metrics,
    log_params,
    mlflow_key,
    package_versions,
    snapshot_dataset,
    start_child_run,
    start_parent_run,
    version_catalog,
)

__all__ = [
    "StoreError",
    "champion_version_or_fail",
    "client_for",
    "ensure_experiment",
    "fingerprint",
    "flatten",
    "guard_store",
    "has_published_output",
    "load_champion",
    "load_model_version",
    "log_bundle_model",
    "log_curves",
    "log_dataset",
    "log_figure",
    "log_metrics",
    "log_params",
    "mlflow_key",
    "package_versions",
    "snapshot_dataset",
    "start_child_run",
    "start_parent_run",
    "version_catalog",
]
