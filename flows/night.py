"""One night's run context and the wiring of each stage (flows/nightly.py reads as the
list of these steps).

A :class:`Night` holds what every stage needs (workspace, run date, flow run id, the
MLflow parent run, the stage clock and skip cache) and collects the run summary in
``out``. Each method calls one stage's task(s) in ``tasks/`` with keyword arguments and
config sections; data moves between stages as files in the workspace.

What the project does itself rather than through Prefect, and why:

* **locks** (tasks/storage/locks.py): a flock per run date survives ``kill -9`` and
  needs no server; a Prefect concurrency limit needs one, and its slots outlive a killed
  process until their lease expires;
* **the skip cache** (tasks/storage/cache.py): stages read and write files, so their
  inputs are fingerprints of files and config; the markers also check that the outputs
  are still there, and paths in them are relative to the workspace. Prefect's input
  caching keys on task parameters and would have to persist results that are folders;
* **stage timing** (flows/measure.py): a stage is several task runs, and the summary
  needs peak memory, which Prefect does not record. Retries stay Prefect's (on the I/O
  tasks: ingest, promote, publish).
"""

from __future__ import annotations

import time
import uuid
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from flows.measure import StageClock
from tasks.config import PipelineConfig

LANDING_LOCK_WAIT_SECONDS = 600


@dataclass
class Night:
    """The run context of one nightly run (see the module docstring)."""

    config: PipelineConfig
    run_date: date
    as_of: bool
    run_id: str
    ws: Any  # tasks.storage.workspace.Workspace
    logger: Any
    cache: Any = None  # tasks.storage.cache.StageCache
    client: Any = None  # MLflow client
    experiment_id: str = ""
    parent_run_id: str = ""
    data_tags: dict[str, str] = field(default_factory=dict)
    clock: StageClock = field(default_factory=StageClock)
    started: float = field(default_factory=time.perf_counter)
    out: dict[str, Any] = field(default_factory=dict)
    _score_parts: dict[str, Any] = field(default_factory=dict)

    # -- opening and closing ---------------------------------------------------------
    @classmethod
    def open(cls, config: PipelineConfig, run_date: date, as_of: bool, logger: Any) -> Night:
        """The context, the MLflow parent run (created first, so any failure is recorded)."""
        from tasks import tracking
        from tasks.data.as_of import check_source
        from tasks.storage import cache
        from tasks.storage.workspace import Workspace

        if as_of:
            check_source(config.ingest.source)
        ws = Workspace.at(config.workspace)
        night = cls(config, run_date, as_of, _flow_run_id(), ws, logger)
        night.cache = cache.StageCache(
            ws.stage_markers, run_date, config.cache.enabled, night.run_id, logger
        )
        logger.info("recpipe nightly for %s in workspace %s", run_date, ws.root)
        _warn_if_dask_is_ignored(config, logger)
        # Refuse a damaged tracking store (and back a sound one up) before writing to it.
        tracking.guard_store(ws, table=config.publish.table, logger=logger)
        night.client = tracking.client_for(ws)
        night.experiment_id = tracking.ensure_experiment(
            night.client, ws, config.tracking.experiment
        )
        night.parent_run_id = tracking.start_parent_run(
            night.client,
            night.experiment_id,
            f"nightly-{run_date.isoformat()}",
            {
                "run_date": run_date.isoformat(),
                "prefect.flow_run_id": night.run_id,
                "as_of": str(as_of),
            },
        )
        tracking.log_params(
            night.client,
            night.parent_run_id,
            tracking.flatten("", config.model_dump(mode="json", by_alias=True)),
        )
        night.out = {
            "run_id": night.run_id,
            "run_date": run_date.isoformat(),
            "as_of": as_of,
            "workspace": str(ws.root),
            "mlflow_uri": ws.mlflow_uri,
            "mlflow_parent_run_id": night.parent_run_id,
            "mlflow_experiment_id": night.experiment_id,
            "stage_seconds": night.clock.seconds,
            "stage_peak_mb": night.clock.peak_mb,
            "cached_stages": night.cache.hits,
            "status": "FAILED",
        }
        return night

    @property
    def database_url(self) -> str:
        return self.config.publish.url(self.ws.database_url)

    @property
    def holder(self) -> dict:
        from tasks.storage.locks import holder_info

        return holder_info(
            self.run_id, run_date=self.run_date.isoformat(), workspace=str(self.ws.root)
        )

    @contextmanager
    def locks(self) -> Any:
        """The date's run lock (and PostgreSQL advisory lock) from ingest to publish."""
        from tasks.forget.run import erasure_lock
        from tasks.storage.locks import database_lock, run_lock

        wait = self.config.lock.wait_seconds
        with ExitStack() as held:
            self.clock.run(
                "lock",
                held.enter_context,
                run_lock(self.ws.locks, self.run_date, wait, self.holder),
            )
            self.clock.run(
                "lock",
                held.enter_context,
                database_lock(self.database_url, self.config.publish.table, self.run_date, wait),
            )
            held.enter_context(erasure_lock(self.ws.locks, wait, shared=True, holder={}))
            yield

    def completed(self) -> None:
        self.out["status"] = "COMPLETED"

    def failed(self, exc: BaseException) -> None:
        from tasks.publishing.stores import Stores
        from tasks.storage.published import publication

        self.out["failed_stage"] = self.clock.failed
        self.out["error"] = f"{type(exc).__name__}: {exc}"
        facts = publication(
            Stores(self.ws.root, self.database_url).journal,
            self.run_date,
            self.run_id,
            self.out.get("published"),
        )
        self.out["publication"] = facts
        with suppress(AttributeError):  # for the CLI's failure line (flows/cli/failure.py)
            exc.recpipe_publication = facts  # type: ignore[attr-defined]
        if getattr(exc, "figures", None) is not None:  # a monitor failure: keep its figures
            self.out["monitor"] = {"figures": exc.figures, "findings": exc.findings}  # type: ignore[attr-defined]

    def close(self) -> None:
        """Stage times and the outcome on the MLflow parent run; the summary artifact."""
        from tasks.report import publish_run_summary

        self.out["total_seconds"] = round(time.perf_counter() - self.started, 2)
        _close_parent_run(self)
        publish_run_summary(self.out)
        self.ws.tighten_databases()  # created by libraries, maybe under a lax umask

    # -- the stages --------------------------------------------------------------------
    def recover(self) -> list[dict]:
        """Finish or undo what a killed run left half-published, before anything else."""
        from tasks.publishing.recovery import recover

        publish = self.config.publish
        done = self.clock.run(
            "lock",
            recover,
            self._stores(),
            held_date=self.run_date,
            tables=(publish.table, publish.similar_table),
        )
        for item in done:
            self.logger.warning(
                "recovery: %s %s", item["action"], item.get("publish_id") or item.get("name")
            )
        self.out["recovered"] = done
        return done

    def ingest(self) -> dict:
        from tasks.storage import cache

        parts = cache.ingest_parts(self.config.ingest, self.run_date, self.as_of, self.ws.root)
        result = self._cached("ingest", parts, [self.ws.raw(self.run_date)], self._ingest_now)
        self.out["ingest"] = result
        return result

    def _ingest_now(self) -> dict:
        from tasks.data.as_of import as_of_task
        from tasks.ingest import ingest_task
        from tasks.storage.locks import file_lock

        with ExitStack() as held:
            if self.config.ingest.source == "landing":  # the landing store is shared by all dates
                wait = max(self.config.lock.wait_seconds, LANDING_LOCK_WAIT_SECONDS)
                held.enter_context(
                    file_lock(
                        self.ws.locks / "landing-ingest.lock",
                        wait,
                        self.holder,
                        "a landing-folder ingest",
                    )
                )
            result = ingest_task(
                config=self.config.ingest,
                run_date=self.run_date,
                raw_dir=str(self.ws.raw(self.run_date)),
                workspace_root=str(self.ws.root),
            )
        if self.as_of:
            as_of = as_of_task(
                interactions_path=result["interactions_path"], run_date=self.run_date
            )
            result = {**result, "as_of": as_of}
        return result

    def validate(self, ingest: dict) -> dict:
        from tasks.data.as_of import cutoff
        from tasks.storage import cache
        from tasks.validate import validate_task

        out_dir = self.ws.validated(self.run_date)
        erased = _screen_erased(self.ws.root, ingest)
        accumulate = bool(ingest.get("incremental"))
        # "now" for the checks (future, too old, stale) is the end of the run date, never
        # the machine's clock: a run of a date checks the same whenever it runs
        now_iso = cutoff(self.run_date).isoformat()
        config = self.config.validate_
        parts = cache.validate_parts(
            ingest, config, out_dir, self.ws.validation_root, accumulate, now_iso
        )
        result = self._cached(
            "validate",
            parts,
            [out_dir],
            lambda: validate_task(
                raw_path=ingest["interactions_path"],
                out_dir=str(out_dir),
                gx_root=str(self.ws.validation_root),
                config=config,
                now_iso=now_iso,
                items_path=ingest.get("items_path"),
                users_path=ingest.get("users_path"),
                accumulate=accumulate,
            ),
        )
        if erased:  # forgotten users' rows: counted, never quarantined with their id
            result = {**result, "erased_rows_dropped": erased}
            result["accounting"] = f"{erased} rows of forgotten users dropped | " + str(
                result.get("accounting", "")
            )
        self.out["validation"] = result
        return result

    @property
    def validated_path(self) -> str:
        return str(self.ws.validated(self.run_date) / "interactions.parquet")

    def features(self) -> dict:
        from tasks import tracking
        from tasks.data.holdout import with_evidence
        from tasks.storage import cache

        out_dir = self.ws.features(self.run_date)
        config = with_evidence(self.config.features, self.config.evaluate)
        result = self._cached(
            "features",
            cache.features_parts(self.validated_path, config),
            [out_dir],
            lambda: _features_in_partitions(self.validated_path, str(out_dir), config),
        )
        self.data_tags = {
            "data.fingerprint": tracking.fingerprint(result["features_dir"]),
            "data.n_train": str(result["n_train"]),
            "data.n_valid": str(result["n_valid"]),
            "data.first_event": result["first_event"],
            "data.last_event": result["last_event"],
            "run_date": self.run_date.isoformat(),
            "prefect.flow_run_id": self.run_id,
        }
        for tag, value in self.data_tags.items():
            self.client.set_tag(self.parent_run_id, tag, value)
        if result.get("holdout"):  # what was held out and why (tasks/data/holdout.py)
            self.client.set_tag(
                self.parent_run_id, "data.holdout", result["holdout"]["description"][:5000]
            )
        self.out["features"] = result
        return result

    def train_and_evaluate(self, features: dict, ingest: dict) -> list[dict]:
        """Every model of ``train.models``, trained and evaluated (or reused: the marker
        is always left; reused only when ``cache.reuse_models`` is on)."""
        from tasks.storage import cache

        results = []
        for name in self.config.train.models:
            parts = cache.model_parts(
                name,
                self.config.train,
                features["features_dir"],
                ingest.get("items_path"),
                self.config.evaluate.k,
            )
            result = self.cache.run(
                f"train-{name}",
                parts,
                [self.ws.models(self.run_date) / name],
                lambda name=name: self._train_and_evaluate(name, features, ingest),
                still_valid=lambda r: _mlflow_run_finished(self.client, r["run_id"]),
                reuse=self.config.cache.reuse_models,
            )
            if f"train-{name}" in self.cache.hits:
                self.client.set_tag(self.parent_run_id, f"train.reused.{name}", result["run_id"])
                self.clock.seconds.setdefault("train", 0.0)
                self.clock.seconds.setdefault("evaluate", 0.0)
            results.append(result)
        self.out["models"] = [
            {
                "model": r["model"],
                "run_id": r["run_id"],
                "train_seconds": r["train_seconds"],
                "metrics": r["metrics"],
                "reused": f"train-{r['model']}" in self.cache.hits,
            }
            for r in results
        ]
        return results

    def _train_and_evaluate(self, name: str, features: dict, ingest: dict) -> dict:
        from tasks.evaluate import evaluate_task
        from tasks.train import train_task

        trained = self.clock.run(
            "train",
            train_task,
            progress_info={"model": name},
            name=name,
            config=self.config.train,
            features_dir=features["features_dir"],
            models_dir=str(self.ws.models(self.run_date)),
            workspace_root=str(self.ws.root),
            experiment_id=self.experiment_id,
            parent_run_id=self.parent_run_id,
            data_tags=self.data_tags,
            items_path=ingest.get("items_path"),
        )
        return self.clock.run(
            "evaluate",
            evaluate_task,
            progress_info={"model": name},
            trained=trained,
            features_dir=features["features_dir"],
            config=self.config.evaluate,
            workspace_root=str(self.ws.root),
        )

    def promote(self, results: list[dict], features: dict) -> dict:
        """The gate decides; the alias itself moves only when the tables commit."""
        from tasks.forget.models import retire_erased_champion
        from tasks.promote import promote_task

        name = self.config.tracking.registered_model
        retired = retire_erased_champion(self.client, name, self.logger)
        result = self.clock.run(
            "promote",
            promote_task,
            results=results,
            features_dir=features["features_dir"],
            config=self.config.evaluate,
            registered_name=self.config.tracking.registered_model,
            workspace_root=str(self.ws.root),
            parent_run_id=self.parent_run_id,
        )
        if retired:
            result = {**result, "retired_erased_champion": retired}
        self.out["promotion"] = result
        return result

    def score(self, promotion: dict, ingest: dict) -> dict:
        """Every user's top-K by the version the gate chose (skipped when the data, the
        model version, the catalog and the settings are those of an earlier run of the
        date: its scores are reused and publishing stamps this run's id on them)."""
        from tasks import tracking
        from tasks.storage import cache

        name = self.config.tracking.registered_model
        version = promotion.get("serving_version") or tracking.champion_version_or_fail(
            self.client, name
        )
        out_dir = self.ws.scores(self.run_date)
        self._score_parts = cache.score_parts(
            validated_path=self.validated_path,
            items_path=ingest.get("items_path"),
            model=f"{name}/{version}@{_version_run(self.client, name, version)}",
            config=self.config.score,
            run_date=self.run_date,
        )
        self._score_parts["positive"] = list(self._positive)  # reasons depend on it
        result = self._cached(
            "score",
            self._score_parts,
            [out_dir],
            lambda: _score_in_shards(
                validated_path=self.validated_path,
                items_path=ingest.get("items_path"),
                registered_name=name,
                workspace_root=str(self.ws.root),
                config=self.config.score,
                run_id=self.run_id,
                run_date=self.run_date,
                out_dir=str(out_dir),
                version=version,
                positive=self._positive,
            ),
        )
        self.out["scoring"] = result
        return result

    @property
    def _positive(self) -> tuple[str, float]:
        """Which events count as positive (``features.positive``): reasons name only those."""
        features = self.config.features
        return (features.positive, features.positive_min_value)

    def check(self, scored: dict, ingest: dict) -> None:
        """The output against its contract (a GX suite), unless ``publish.validate_output``
        is off."""
        from tasks.check import check_output_task
        from tasks.storage import cache

        if not self.config.publish.validate_output:
            return
        scores = self.ws.scores(self.run_date)
        scored["output_check"] = self._cached(
            "check",  # a pure function of the scores, which the score key pins down
            {"stage": "check", "scores": cache.key_of(self._score_parts)},
            [scores],
            lambda: check_output_task(
                scores_path=scored["path"],
                shard_paths=scored["shard_paths"],
                items_path=ingest.get("items_path"),
                config=self.config.score,
                gx_root=str(self.ws.validation_root),
                known_items_path=scored["items_vocab_path"],
            ),
        )

    def monitor(self, scored: dict) -> dict:
        from tasks.monitor import monitor_task

        result = self.clock.run(
            "monitor",
            monitor_task,
            scores_path=scored["path"],
            validated_path=self.validated_path,
            table_root=str(self.ws.tables / self.config.publish.table),
            run_date=self.run_date,
            config=self.config.monitor,
            workspace_root=str(self.ws.root),
            parent_run_id=self.parent_run_id,
        )
        self.out["monitor"] = result
        return result

    def publish(self, scored: dict, promotion: dict) -> dict:
        """Both tables, both stores, one commit point; then the alias (tasks/publish.py)."""
        from tasks.publish import publish_task
        from tasks.publishing.champion import ChampionMove
        from tasks.publishing.stores import RECOMMENDATIONS, SIMILAR_ITEMS, Output

        config = self.config.publish
        outputs = [Output(config.table, RECOMMENDATIONS, Path(scored["path"]))]
        if scored["similar_path"]:
            outputs.append(
                Output(config.similar_table, SIMILAR_ITEMS, Path(scored["similar_path"]))
            )
        move = None
        if promotion.get("move_alias"):
            move = ChampionMove(
                promotion["registered_name"], promotion["serving_version"], promotion["reason"]
            )
        result = self.clock.run(
            "publish",
            publish_task,
            workspace_root=str(self.ws.root),
            database_url=self.database_url,
            run_id=self.run_id,
            run_date=self.run_date,
            outputs=outputs,
            keep_runs=config.keep_runs,
            champion=move,
            retention_hours=config.lake_retention_hours,
        )
        self.out["published"] = result
        return result

    def report(self, results: list[dict], scored: dict) -> None:
        """Figures and counts on the parent run (rendered again only when the models'
        figures or the scores changed)."""
        from tasks.report import log_report, report_task
        from tasks.storage import cache

        out_dir = self.ws.reports(self.run_date)
        parts = {
            "stage": "report",
            "scores": cache.key_of(self._score_parts),
            "models": [[r["model"], r["run_id"], r["metrics"]] for r in results],
        }
        report = self._cached(
            "report",
            parts,
            [out_dir],
            lambda: report_task(
                results=results,
                validated_path=self.validated_path,
                scores_path=scored["path"],
                out_dir=str(out_dir),
            ),
        )
        log_report(str(self.ws.root), self.parent_run_id, report)

    # -- helpers -------------------------------------------------------------------------
    def _cached(self, stage: str, parts: Any, outputs: list[Path], run: Any) -> dict:
        return self.clock.run(stage, self.cache.run, stage, parts, outputs, run)

    def _stores(self) -> Any:
        from tasks.publishing.stores import Stores

        return Stores(self.ws.root, self.database_url)


def _screen_erased(root: Path, ingest: dict) -> int:
    """Drop the events of users in the erasure ledger from the night's raw tables, before
    validation (tasks/forget/ledger.py); how many rows."""
    from tasks.forget.ledger import screen_events

    return screen_events(root, [ingest.get("interactions_path"), ingest.get("users_path")])


def _flow_run_id() -> str:
    from prefect.runtime import flow_run

    return str(flow_run.id or uuid.uuid4())


def _warn_if_dask_is_ignored(config: PipelineConfig, logger: Any) -> None:
    from prefect.context import get_run_context

    runner = type(getattr(get_run_context(), "task_runner", None)).__name__
    if config.runner.kind == "dask" and runner != "DaskTaskRunner":
        logger.warning(
            "runner.kind is 'dask' but this flow run's task runner is %s: the scoring shards "
            "run in this process. Start the flow through recpipe run/backfill, or "
            "flows.nightly.nightly_flow_for(config), to run them on Dask.",
            runner,
        )


def _fan_out(task: Any, calls: list[tuple]) -> list[Any]:
    """Run ``task`` once per argument tuple: submitted to the cluster's workers on a Dask
    task runner, otherwise one after another here, so memory holds one piece at a time."""
    from prefect.context import TaskRunContext, get_run_context

    context = get_run_context()
    runner = None if isinstance(context, TaskRunContext) else context.task_runner
    if type(runner).__name__ == "DaskTaskRunner":
        futures = [task.submit(*args) for args in calls]
        return [future.result() for future in futures]
    return [task(*args) for args in calls]


def _features_in_partitions(validated_path: str, out_dir: str, config: Any) -> dict:
    """Partition by user, collect each partition's ids, write the vocabularies, encode and
    split each partition, finish (tasks/features.py)."""
    from tasks.features import (
        encode_partition_task,
        finish_features_task,
        partition_ids_task,
        plan_features_task,
        write_vocabularies_task,
    )

    plan = plan_features_task(validated_path, out_dir, config)
    parts = range(len(plan.partitions))
    ids = _fan_out(partition_ids_task, [(plan, part) for part in parts])
    vocabularies = write_vocabularies_task(plan, ids)
    del ids
    calls = [(plan, part, vocabularies.get("holdout") or vocabularies["cutoff"]) for part in parts]
    counts = _fan_out(encode_partition_task, calls)
    return finish_features_task(plan, vocabularies, counts)


def _score_in_shards(**kwargs: Any) -> dict:
    """Plan, score each user shard, finish."""
    from tasks.score import finish_scoring_task, plan_scoring_task, score_shard_task

    start = time.perf_counter()
    plan = plan_scoring_task(**kwargs)
    parts = _fan_out(score_shard_task, [(plan, shard) for shard in range(len(plan.shards))])
    return finish_scoring_task(plan, parts, time.perf_counter() - start)


def _version_run(client: Any, name: str, version: str | None) -> str:
    """The MLflow run behind a registered version (a rebuilt registry can reuse numbers)."""
    if version is None:
        return ""
    return client.get_model_version(name, version).run_id or ""


def _mlflow_run_finished(client: Any, run_id: str) -> bool:
    """A reused model's MLflow run must still exist, finished and not deleted."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        return False
    return run.info.status == "FINISHED" and run.info.lifecycle_stage == "active"


def _close_parent_run(night: Night) -> None:
    """Stage times, cache hits and the outcome on the MLflow parent run; FAILED on failure."""
    from tasks import tracking

    out, client, run = night.out, night.client, night.parent_run_id
    finished = out["status"] == "COMPLETED"
    try:
        tracking.log_metrics(
            client,
            run,
            {f"stage_seconds.{k}": v for k, v in out["stage_seconds"].items()}
            | {"total_seconds": out["total_seconds"]},
        )
        client.set_tag(run, "recpipe.cached_stages", ",".join(night.cache.hits) or "none")
        if not finished:
            client.set_tag(run, "recpipe.failed_stage", out.get("failed_stage") or "")
            client.set_tag(run, "recpipe.error", str(out.get("error", ""))[:5000])
        client.set_terminated(run, status="FINISHED" if finished else "FAILED")
    except Exception as exc:  # never hide the stage's own error behind a tracking one
        if finished:
            raise
        cause = " ".join(str(getattr(exc, "orig", None) or exc).split())[:200]
        night.logger.warning("could not record the failure on MLflow run %s: %s", run, cause)
