"""The model stages of a night: every model trained and evaluated (or reused), then the
gate (flows/night_context.py holds the run context; tasks/train.py, tasks/evaluate.py and
tasks/promote.py the stages)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flows.night_context import NightContext

if TYPE_CHECKING:
    from tasks.config import TrainConfig
    from tasks.evaluate import ModelResult
    from tasks.features import FeaturesResult
    from tasks.ingest import IngestResult
    from tasks.promote import Promotion


class ModelStages(NightContext):
    """Train, evaluate and promote, as methods of :class:`flows.night.Night`."""

    def train_and_evaluate(
        self, features: FeaturesResult, ingest: IngestResult
    ) -> list[ModelResult]:
        """Every model of ``train.models``, trained and evaluated (or reused: the marker
        is always left; reused only when ``cache.reuse_models`` is on)."""
        from flows.stage_keys import model_parts
        from models import declared_inputs
        from tasks.evaluate import ModelResult

        train_config = self.plan_memory(features, self.with_content_models(features))
        results = []
        for name in train_config.models:
            parts = model_parts(
                name,
                train_config,
                features.features_dir,
                ingest.items_path,
                self.config.evaluate.k,
            )

            def compute(name: str = name) -> ModelResult:
                return self._train_and_evaluate(name, features, ingest, train_config)

            result = self.stage_cache.run(
                f"train-{name}",
                parts,
                [self.ws.models(self.run_date) / name],
                compute,
                still_valid=lambda r: _mlflow_run_finished(self.client, r.run_id),
                reuse=self.config.cache.reuse_models,
                result_type=ModelResult,
            )
            if f"train-{name}" in self.stage_cache.hits:
                self.client.set_tag(self.parent_run_id, f"train.reused.{name}", result.run_id)
                self.clock.seconds.setdefault("train", 0.0)
                self.clock.seconds.setdefault("evaluate", 0.0)
            results.append(result)
        self.out["models"] = [
            {
                "model": r.model,
                "inputs": declared_inputs(r.model),
                "run_id": r.run_id,
                "train_seconds": r.train_seconds,
                "metrics": r.metrics,
                "reused": f"train-{r.model}" in self.stage_cache.hits,
            }
            for r in results
        ]
        return results

    def with_content_models(self, features: FeaturesResult) -> TrainConfig:
        """``train`` with ``train.content_models`` added to its models when the catalogue has
        content (they rank the items nobody has interacted with: tasks/scoring/new_items.py);
        as configured without content."""
        train = self.config.train
        extra = [m for m in train.content_models if m not in train.models]
        if not extra:
            return train
        if not features.content:
            self.logger.info(
                "content models %s not trained: the catalogue has no content columns", extra
            )
            return train
        return train.model_copy(update={"models": [*train.models, *extra]})

    def plan_memory(
        self, features: FeaturesResult, train: TrainConfig | None = None
    ) -> TrainConfig:
        """The night's memory plan (tasks/planning/memory.py) of ``train`` (the night's train
        config by default), before anything trains: its lines logged and in the summary; the
        train config it leaves."""
        from models.memory import DataShape
        from tasks.planning.memory import memory_budget, plan_models

        train = train or self.config.train
        shape = DataShape(features.n_users, features.n_items, features.n_train)
        budget, source = memory_budget(train)
        plan = plan_models(train, shape, budget, source)
        for line in plan.lines:
            self.logger.warning("memory plan: %s", line)
        self.out["memory_plan"] = plan.summary()
        return plan.config

    def _train_and_evaluate(
        self,
        name: str,
        features: FeaturesResult,
        ingest: IngestResult,
        train_config: TrainConfig,
    ) -> ModelResult:
        from tasks.evaluate import evaluate
        from tasks.train import train

        trained = self._timed(
            "train",
            train,
            progress_info={"model": name},
            name=name,
            config=train_config,
            features_dir=features.features_dir,
            models_dir=str(self.ws.models(self.run_date)),
            workspace_root=str(self.ws.root),
            experiment_id=self.experiment_id,
            parent_run_id=self.parent_run_id,
            data_tags=self.data_tags,
            items_path=ingest.items_path,
        )
        return self._timed(
            "evaluate",
            evaluate,
            progress_info={"model": name},
            trained=trained,
            features_dir=features.features_dir,
            config=self.config.evaluate,
            workspace_root=str(self.ws.root),
        )

    def promote(self, results: list[ModelResult], features: FeaturesResult) -> Promotion:
        """The gate decides; the alias itself moves only when the tables commit."""
        from tasks.forget.models import retire_erased_champion
        from tasks.promote import promote

        name = self.config.tracking.registered_model
        retired = retire_erased_champion(self.client, name, self.logger)
        result = self._timed(
            "promote",
            promote,
            results=results,
            features_dir=features.features_dir,
            config=self.config.evaluate,
            registered_name=name,
            workspace_root=str(self.ws.root),
            parent_run_id=self.parent_run_id,
        )
        if retired:
            result = result.model_copy(update={"retired_erased_champion": retired})
        self.out["promotion"] = result.summary()
        return result


def _mlflow_run_finished(client: Any, run_id: str) -> bool:
    """A reused model's MLflow run must still exist, finished and not deleted."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        return False
    return run.info.status == "FINISHED" and run.info.lifecycle_stage == "active"
