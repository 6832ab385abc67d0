"""Train: fit each configured model on the training split; one MLflow child run each.

Every model receives the same inputs (see ``tasks/data/model_inputs.py``): the
interaction matrix, time-ordered sequences, item content features and an
early-stopping target carved from the end of the training period; each model
uses what it needs.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from models import BaseRecommender, EASEMultDAE, declared_inputs, make_recommender
from models.implicit_mf import ImplicitMF
from models.keras_base import KerasRecommender
from tasks.config import TrainConfig
from tasks.data.model_inputs import FitInputs, fit_inputs_from_snapshot
from tasks.storage.cache import StageResult

progress = logging.getLogger("recpipe.progress")


def model_params(name: str, config: TrainConfig) -> dict:
    """Constructor arguments of model ``name``: its settings in the config (the model's
    own settings class, so every setting is there, defaults included)."""
    return getattr(config, name).model_dump()


def train_model(name: str, config: TrainConfig, inputs: FitInputs) -> tuple[BaseRecommender, float]:
    """Fit model ``name``; return it and the training time in seconds. A model trained in
    epochs (Keras) or iterations (implicit's ALS and BPR) reports each one on the
    ``recpipe.progress`` logger (the CLI's live display)."""
    model = make_recommender(name, **model_params(name, config))
    extra: dict[str, Any] = {}
    callback = progress_callback(model)
    if callback is not None:
        extra["callbacks"] = [callback]
    start = time.perf_counter()
    model.fit(inputs.train, **inputs.kwargs(), **extra)
    return model, time.perf_counter() - start


def refit_on_all(
    model: BaseRecommender,
    features_dir: str,
    items_frame: pd.DataFrame | None,
    config: TrainConfig,
    needs: tuple[str, ...],
    seconds: float,
) -> tuple[BaseRecommender, float]:
    """``model`` fitted again on the whole training period with the settings its validation
    chose (``refit_params``), its validation record kept; the seconds of both fits."""
    days = config.early_stopping_days
    rest = tuple(n for n in needs if n != "validation")
    inputs = fit_inputs_from_snapshot(features_dir, items_frame, days, rest)
    start = time.perf_counter()
    again = make_recommender(model.name, **model.refit_params())  # type: ignore[attr-defined]
    again.fit(inputs.train, **inputs.kwargs())
    chosen = getattr(model, "validation_ndcg_", None)
    if chosen is not None:
        again.validation_ndcg_ = chosen  # type: ignore[attr-defined]
    return again, seconds + time.perf_counter() - start


def progress_callback(model: BaseRecommender, /, **fields: Any) -> Any:
    """An epoch reporter for ``model`` (see :class:`EpochReport`; ``fields`` are added to
    each record), or None for a model fitted in one step (closed form, counting)."""
    fields.pop("model", None)
    if isinstance(model, KerasRecommender):
        return epoch_progress(model.name, int(model.params["epochs"]), **fields)
    if isinstance(model, EASEMultDAE):  # the Mult-DAE part trains in epochs
        return epoch_progress(model.name, int(model.params["mult_dae"]["epochs"]), **fields)
    if isinstance(model, ImplicitMF):
        return EpochReport(model.name, int(model.params["iterations"]), fields)
    return None


class EpochReport:
    """Logs ``{"stage": "train", "event": "epoch", "model", "epoch", "epochs", **fields}``
    to ``recpipe.progress``: epoch 0 when training starts, then after each epoch (early
    stopping may end it before ``epochs``). The two methods are those of a Keras callback."""

    def __init__(self, model: str, epochs: int, fields: dict[str, Any] | None = None) -> None:
        self.model, self.epochs, self.fields = model, epochs, dict(fields or {})

    def report(self, epoch: int) -> None:
        progress.info(
            "%s epoch %d/%d",
            self.model,
            epoch,
            self.epochs,
            extra={
                "stage": "train",
                "event": "epoch",
                "model": self.model,
                "epoch": epoch,
                "epochs": self.epochs,
                **self.fields,
            },
        )

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.report(0)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.report(epoch + 1)


def epoch_progress(model: str, epochs: int, **fields: Any) -> Any:
    """A Keras callback doing what :class:`EpochReport` does."""
    import keras

    reporter = EpochReport(model, epochs, fields)

    class EpochProgress(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict | None = None) -> None:
            reporter.on_train_begin(logs)

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            reporter.on_epoch_end(epoch, logs)

    return EpochProgress()


class TrainedModel(StageResult):
    """A model fitted tonight: its bundle on disk, its MLflow run and logged model."""

    model: str
    run_id: str
    bundle_dir: str
    model_uri: str
    train_seconds: float


def train(
    name: str,
    config: TrainConfig,
    features_dir: str,
    models_dir: str,
    workspace_root: str,
    experiment_id: str,
    parent_run_id: str,
    data_tags: dict[str, str],
    config_params: dict[str, str] | None = None,
    items_path: str | None = None,
) -> TrainedModel:
    """Fit model ``name`` on the feature snapshot, save its bundle under ``models_dir`` and
    record it as a child run of ``parent_run_id`` (params, curves, the logged model)."""
    from models.vocab import save_bundle
    from tasks import tracking
    from tasks.data.snapshot import read_vocabularies
    from tasks.storage.workspace import Workspace

    users, items = read_vocabularies(Path(features_dir))
    items_frame = pd.read_parquet(items_path) if items_path else None
    needs = make_recommender(name, **model_params(name, config)).fit_inputs
    inputs = fit_inputs_from_snapshot(features_dir, items_frame, config.early_stopping_days, needs)
    model, seconds = train_model(name, config, inputs)
    if inputs.validation is not None and model.refit_on_all:
        model, seconds = refit_on_all(model, features_dir, items_frame, config, needs, seconds)
    bundle_dir = save_bundle(Path(models_dir) / name, model, users, items)

    client = tracking.client_for(Workspace.at(workspace_root))
    run_id = tracking.start_child_run(
        client,
        experiment_id,
        parent_run_id,
        run_name=name,
        tags={
            "model": name,
            "inputs": declared_inputs(name),
            **data_tags,
            **tracking.package_versions(),
        },
    )
    # The feature snapshot as the run's dataset input (and the night's: a no-op after the
    # first model), so MLflow's Dataset column names the data every model saw.
    dataset = tracking.snapshot_dataset(features_dir, data_tags)
    for run in (run_id, parent_run_id):
        tracking.log_dataset(client, run, dataset)
    params = {**(config_params or {}), **tracking.flatten("", {"model": name, **model.params})}
    tracking.log_params(client, run_id, params)
    history = getattr(model, "history_", {})
    tracking.log_curves(client, run_id, history)
    if history:
        from tasks.tracking.plots import training_curves

        tracking.log_figure(
            client,
            run_id,
            training_curves(history, f"{name}: training"),
            "plots/training_curves.png",
        )
    tracking.log_metrics(client, run_id, {"train_seconds": seconds})
    model_uri = tracking.log_bundle_model(run_id, bundle_dir, users.ids[:3].tolist())
    return TrainedModel(
        model=name,
        run_id=run_id,
        bundle_dir=str(bundle_dir),
        model_uri=model_uri,
        train_seconds=round(seconds, 2),
    )


train_task = task(name="train", task_run_name="train-{name}", cache_policy=NO_CACHE)(train)
