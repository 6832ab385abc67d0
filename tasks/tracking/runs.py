"""MLflow tracking for the workspace store: experiment, parent/child runs, registry."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from tasks.errors import StoreError  # noqa: F401  (re-exported with the store guard)
from tasks.storage.workspace import Workspace
from tasks.tracking.store import (  # noqa: F401  (re-exported: tracking.guard_store etc.)
    check_store,
    damaged_store_error,
    describe_error,
    guard_store,
    has_published_output,
)

TRACKED_PACKAGES = [
    "tensorflow-cpu",
    "keras",
    "pandas",
    "numpy",
    "mlflow",
    "prefect",
    "great-expectations",
]


def client_for(workspace: Workspace) -> Any:
    """An MlflowClient on the workspace's store; also points the fluent API there.

    A damaged store (not SQLite, truncated, lacking MLflow's tables, or empty although
    the workspace published output) raises ``StoreError`` naming the file, instead of a
    raw SQLAlchemy error or a silently new store. The check reads only the schema (about
    a millisecond); ``guard_store`` adds the full integrity check and a backup.
    """
    import sqlite3

    import mlflow
    from mlflow.tracking import MlflowClient

    check_store(workspace)
    mlflow.set_tracking_uri(workspace.mlflow_uri)
    mlflow.set_registry_uri(workspace.mlflow_uri)
    try:  # MLflow opens the store here (creating its tables when there are none)
        return MlflowClient(tracking_uri=workspace.mlflow_uri, registry_uri=workspace.mlflow_uri)
    except Exception as exc:
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, sqlite3.DatabaseError):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        raise damaged_store_error(workspace, describe_error(cause), None) from exc


def ensure_experiment(client: Any, workspace: Workspace, name: str) -> str:
    """The experiment ``name`` (created in the workspace's artifact store if new), tagged so
    MLflow's UI opens it on its runs table with the ranking metrics as columns (see
    ``tasks/tracking/ui.py``); an existing experiment gets the tags too."""
    from tasks.tracking.ui import tag_experiment

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        experiment_id = client.create_experiment(
            name, artifact_location=workspace.mlflow_artifacts.as_uri()
        )
        tags: dict[str, str] = {}
    else:
        experiment_id, tags = experiment.experiment_id, experiment.tags
    tag_experiment(client, experiment_id, tags)
    return experiment_id


def mlflow_key(name: str) -> str:
    """MLflow keys allow no '@': ``ndcg@10`` -> ``ndcg_at_10``."""
    return name.replace("@", "_at_")


def package_versions() -> dict[str, str]:
    out = {}
    for name in TRACKED_PACKAGES:
        try:
            out[f"env.{name}"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def flatten(prefix: str, value: Any) -> dict[str, str]:
    """Nested config -> flat ``{"a.b": "1"}`` params."""
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for key, sub in value.items():
            out.update(flatten(f"{prefix}.{key}" if prefix else str(key), sub))
        return out
    return {prefix: json.dumps(value) if isinstance(value, (list, tuple)) else str(value)}


def fingerprint(directory: Path | str) -> str:
    """sha256 over the bytes of every file in a folder (sorted by name)."""
    digest = hashlib.sha256()
    for path in sorted(Path(directory).rglob("*")):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


#: MLflow stores a dataset digest of at most 36 characters; the full fingerprint is in
#: the dataset's profile and the run's ``data.fingerprint`` tag.
DIGEST_CHARS = 16


def snapshot_dataset(features_dir: Path | str, data_tags: dict[str, str]) -> Any:
    """The feature snapshot as an MLflow dataset entity, from metadata only: its folder,
    the fingerprint and counts the flow computed (``data_tags``), ``meta.json`` and the
    Parquet schema of its training table; no rows are read."""
    import pyarrow.parquet as pq
    from mlflow.entities import Dataset

    folder = Path(features_dir).resolve()
    digest = data_tags.get("data.fingerprint") or fingerprint(folder)
    meta_path = folder / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    profile: dict[str, Any] = {"fingerprint": digest}
    for key in ("n_users", "n_items", "n_train", "n_valid", "cutoff", "first_event", "last_event"):
        value = meta.get(key, data_tags.get(f"data.{key}"))
        if value is not None:
            profile[key] = int(value) if str(value).isdigit() else value
    schema = None
    train = folder / "train.parquet"
    parts = sorted(train.glob("*.parquet")) if train.is_dir() else [train]
    if parts and parts[0].is_file():
        fields = pq.read_schema(parts[0])
        schema = json.dumps(
            {"mlflow_colspec": [{"name": f.name, "type": _mlflow_type(f.type)} for f in fields]}
        )
    run_date = data_tags.get("run_date") or folder.name.partition("=")[2] or folder.name
    return Dataset(
        name=f"features-{run_date}",
        digest=digest[:DIGEST_CHARS],
        source_type="local",
        source=json.dumps({"uri": folder.as_uri()}),
        schema=schema,
        profile=json.dumps(profile),
    )


def _mlflow_type(arrow_type: Any) -> str:
    """An Arrow column type as MLflow's schema names it."""
    import pyarrow.types as pt

    checks = [
        (pt.is_boolean, "boolean"),
        (pt.is_int32, "integer"),
        (pt.is_integer, "long"),
        (pt.is_float32, "float"),
        (pt.is_floating, "double"),
        (pt.is_timestamp, "datetime"),
        (pt.is_binary, "binary"),
    ]
    return next((name for check, name in checks if check(arrow_type)), "string")


def log_dataset(client: Any, run_id: str, dataset: Any, context: str = "training") -> None:
    """``dataset`` as an input of the run (MLflow's Dataset column; logging it twice to a
    run is a no-op)."""
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    client.log_inputs(
        run_id, datasets=[DatasetInput(dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])]
    )


def start_parent_run(client: Any, experiment_id: str, run_name: str, tags: dict[str, str]) -> str:
    """A run of its own; a ``prefect.flow_run_id`` tag gains ``prefect.flow_run_url`` when
    the Prefect UI's address is known (``PREFECT_UI_URL``, or a real server's API URL)."""
    from tasks.tracking.ui import prefect_flow_run_url

    flow_run_id = tags.get("prefect.flow_run_id")
    url = prefect_flow_run_url(flow_run_id) if flow_run_id else None
    if url and "prefect.flow_run_url" not in tags:
        tags = {**tags, "prefect.flow_run_url": url}
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    return run.info.run_id


def start_child_run(
    client: Any, experiment_id: str, parent_run_id: str, run_name: str, tags: dict[str, str]
) -> str:
    run = client.create_run(
        experiment_id, run_name=run_name, tags={"mlflow.parentRunId": parent_run_id, **tags}
    )
    return run.info.run_id


def log_params(client: Any, run_id: str, params: dict[str, str]) -> None:
    from mlflow.entities import Param

    items = [Param(k, v[:6000]) for k, v in params.items()]
    for start in range(0, len(items), 100):
        client.log_batch(run_id, params=items[start : start + 100])


def log_metrics(client: Any, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [Metric(mlflow_key(k), float(v), now, step) for k, v in metrics.items()]
    client.log_batch(run_id, metrics=batch)


def log_curves(client: Any, run_id: str, history: dict[str, list[float]]) -> None:
    """Per-epoch curves (Keras history) as metrics with step = epoch."""
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [
        Metric(f"epoch_{name}", float(value), now, step)
        for name, values in history.items()
        for step, value in enumerate(values)
    ]
    for start in range(0, len(batch), 1000):
        client.log_batch(run_id, metrics=batch[start : start + 1000])


def log_figure(client: Any, run_id: str, figure: Any, path: str) -> None:
    """Log a matplotlib figure as a PNG artifact and close it."""
    import matplotlib.pyplot as plt

    try:
        client.log_figure(run_id, figure, path)
    finally:
        plt.close(figure)


def model_signature() -> Any:
    """Raw user ids in, optionally with their events (``item_id``, ``timestamp``,
    ``value``); the table's rows out (tasks/scoring/serving.py: ``ANSWER_COLUMNS``), with
    where each user's history came from; ``k`` as a parameter (0: the published K)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(
        inputs=Schema(
            [
                ColSpec("string", "user_id"),
                ColSpec("string", "item_id", required=False),
                ColSpec("datetime", "timestamp", required=False),
                ColSpec("double", "value", required=False),
            ]
        ),
        outputs=Schema(
            [
                ColSpec("string", "user_id"),
                ColSpec("long", "rank"),
                ColSpec("string", "item_id"),
                ColSpec("double", "score"),
                ColSpec("string", "strategy", required=False),
                ColSpec("string", "reason", required=False),
                ColSpec("string", "model_name", required=False),
                ColSpec("string", "model_version", required=False),
                ColSpec("string", "run_id", required=False),
                ColSpec("string", "run_date", required=False),
                ColSpec("string", "history", required=False),
            ]
        ),
        params=ParamSchema([ParamSpec("k", "long", 0)]),
    )


def log_bundle_model(run_id: str, bundle_dir: Path, example_users: list[str]) -> str:
    """Log a model bundle as an MLflow pyfunc model on ``run_id``; return its model URI."""
    import mlflow
    import pandas as pd

    import models as models_pkg
    import tasks as tasks_pkg

    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("pyfunc_model.py")),
            artifacts={"bundle": str(bundle_dir)},
            # the models, and the ranking rules the served model answers with
            code_paths=[str(Path(str(pkg.__file__)).parent) for pkg in (models_pkg, tasks_pkg)],
            signature=model_signature(),
            input_example=pd.DataFrame({"user_id": example_users}),
            pip_requirements=_requirements(),
        )
    return info.model_uri


def _requirements() -> list[str]:
    reqs = []
    names = ["tensorflow-cpu", "keras", "numpy", "scipy", "pandas", "pyarrow", "mlflow"]
    for name in [*names, "pydantic", "pydantic-settings"]:
        try:
            reqs.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return reqs


def champion_version_or_fail(client: Any, registered_name: str) -> str:
    """The champion's version number; a clear error when there is none."""
    from tasks.tracking.registry import CHAMPION, RegistryError, champion_version

    version = champion_version(client, registered_name)
    if version is None:
        raise RegistryError(
            f"registered model {registered_name!r} has no {CHAMPION!r} alias; "
            "run the nightly flow once, or set one with 'recpipe model promote VERSION'"
        )
    return version


def load_champion(client: Any, registered_name: str) -> tuple[Any, str]:
    """``(pyfunc wrapper with .model/.users/.items, version)`` of the champion.

    The alias is resolved once and that exact version is loaded, so a promotion
    happening meanwhile cannot mix two versions in one run.
    """
    import mlflow

    version = champion_version_or_fail(client, registered_name)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{registered_name}/{version}")
    return pyfunc.unwrap_python_model(), version


@lru_cache(maxsize=2)
def load_model_version(workspace_root: str, registered_name: str, version: str, run_id: str) -> Any:
    """A registered version's wrapper (.model/.users/.items), loaded once per process:
    the shards of a run (on this process or on a Dask worker) share it. ``run_id`` (the
    version's run) is part of the key, so a registry rebuilt at the same path with
    the same version numbers is never served from a stale copy."""
    import mlflow

    client_for(Workspace.at(workspace_root))
    pyfunc = mlflow.pyfunc.load_model(f"models:/{registered_name}/{version}")
    return pyfunc.unwrap_python_model()


@lru_cache(maxsize=4)
def version_catalog(workspace_root: str, registered_name: str, version: str, run_id: str) -> Any:
    """``(model name, item vocabulary)`` of a registered version, read from its bundle's
    two small files without loading the model: what planning the scoring needs of the
    champion (the shards load the model itself, once per process). ``run_id`` keys the
    cache as in :func:`load_model_version`."""
    import mlflow
    import yaml

    from models.vocab import IdVocabulary

    client_for(Workspace.at(workspace_root))
    base = f"models:/{registered_name}/{version}"
    spec = yaml.safe_load(
        Path(mlflow.artifacts.download_artifacts(artifact_uri=f"{base}/MLmodel")).read_text()
    )
    bundle = spec["flavors"]["python_function"]["artifacts"]["bundle"]["path"]

    def read(relative: str) -> str:
        uri = f"{base}/{bundle}/{relative}"
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri)).read_text()

    meta = json.loads(read("recommender/recommender.json"))
    return meta["model"], IdVocabulary.from_json(read("items.json"))
