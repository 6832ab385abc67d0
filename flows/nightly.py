"""The nightly flow: ingest -> validate -> features -> train -> evaluate -> promote -> score
-> check -> monitor -> publish -> report.

Wiring only: every stage is a task in ``tasks/``; data moves between stages as files in
the workspace, and tasks exchange small dicts of paths and counts. Around the stages:

* a lock per run date (``tasks/storage/locks.py``) held from ingest to publish;
* a skip cache for ingest, validate and features (``tasks/storage/cache.py``), and, with
  ``cache.reuse_models``, for train + evaluate;
* one MLflow parent run per night, created first so a failure at any stage is recorded
  (status FAILED, tags ``recpipe.failed_stage`` and ``recpipe.error``);
* a run summary as Prefect artifacts, also when the run fails (``tasks/report.py``).
"""

# No `from __future__ import annotations`: Prefect builds the flow's parameter model from
# these annotations, also when it loads this file from a deployment's entrypoint.
import ctypes
import gc
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.context import get_run_context

from tasks.config import PipelineConfig, load_config

LANDING_LOCK_WAIT_SECONDS = 600


class _StageClock:
    """Runs stages in order, records the wall time of each, the peak memory (resident set
    size of this process, sampled every 50 ms) while it ran, and which one failed."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.peak_mb: dict[str, float] = {}
        self.failed: str | None = None

    def run(self, stage: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        sampler = _PeakMemory()
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:
            if self.failed is None:
                self.failed = stage
                mark_stage(exc, stage)
            raise
        finally:
            self.seconds[stage] = round(
                self.seconds.get(stage, 0.0) + time.perf_counter() - start, 2
            )
            self.peak_mb[stage] = max(self.peak_mb.get(stage, 0.0), sampler.stop())
            release_memory()


def release_memory() -> None:
    """Hand memory freed by a stage back to the system, so the next stage does not start
    from the previous one's high-water mark: the allocator's free lists (glibc's
    ``malloc_trim``) and Arrow's memory pool keep what large tables once used."""
    gc.collect()
    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


class _PeakMemory:
    """The largest resident set size of this process seen while it runs (Linux /proc;
    elsewhere nothing is sampled and the peak is 0)."""

    PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def __init__(self, interval: float = 0.05) -> None:
        self.peak = self._rss()
        self._done = threading.Event()
        self._thread = None
        if self.peak:
            self._thread = threading.Thread(target=self._poll, args=(interval,), daemon=True)
            self._thread.start()

    def _rss(self) -> int:
        try:
            with open("/proc/self/statm", "rb") as handle:
                return int(handle.read().split()[1]) * self.PAGE
        except (OSError, ValueError, IndexError):
            return 0

    def _poll(self, interval: float) -> None:
        while not self._done.wait(interval):
            self.peak = max(self.peak, self._rss())

    def stop(self) -> float:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, self._rss())
        return round(self.peak / 2**20, 1)


def mark_stage(exc: BaseException, stage: str) -> None:
    """Remember on the exception which stage raised it (the CLI says so)."""
    if getattr(exc, "recpipe_stage", None) is None:
        try:
            exc.recpipe_stage = stage  # type: ignore[attr-defined]
            exc.add_note(f"recpipe stage: {stage}")
        except (AttributeError, TypeError):  # pragma: no cover - exotic exception types
            pass


def _flow_run_id() -> str:
    from prefect.runtime import flow_run

    return str(flow_run.id or uuid.uuid4())


@flow(name="recpipe-nightly", log_prints=True)
def nightly(
    config: PipelineConfig | None = None, run_date: date | None = None, as_of: bool = False
) -> dict:
    """Turn the night's interactions into a fresh, published recommendations table.

    ``as_of`` (backfills): use only events before the day after ``run_date``.
    """
    from tasks.check import check_output_task
    from tasks.data.as_of import as_of_task, check_source, cutoff
    from tasks.evaluate import evaluate_task
    from tasks.ingest import ingest_task
    from tasks.monitor import monitor_task
    from tasks.promote import promote_task
    from tasks.publish import (
        RECOMMENDATIONS,
        SIMILAR_ITEMS,
        ChampionMove,
        Output,
        Stores,
        publish_task,
        recover,
    )
    from tasks.report import publish_run_summary, report_task
    from tasks.storage import cache as stage_cache
    from tasks.storage import tracking
    from tasks.storage.locks import database_lock, file_lock, holder_info, run_lock
    from tasks.storage.workspace import Workspace
    from tasks.train import train_task
    from tasks.validate import validate_task

    logger = get_run_logger()
    config = config or load_config()
    run_date = run_date or datetime.now(UTC).date()
    if as_of:
        check_source(config.ingest.source)
    ws = Workspace.at(config.workspace)
    run_id = _flow_run_id()
    clock = _StageClock()
    started = time.perf_counter()
    database_url = config.publish.database_url or ws.database_url
    holder = holder_info(run_id, run_date=run_date.isoformat(), workspace=str(ws.root))
    cache = stage_cache.StageCache(ws.stage_markers, run_date, config.cache.enabled, run_id, logger)
    logger.info("recpipe nightly for %s in workspace %s", run_date, ws.root)
    runner = type(getattr(get_run_context(), "task_runner", None)).__name__
    if config.runner.kind == "dask" and runner != "DaskTaskRunner":
        logger.warning(
            "runner.kind is 'dask' but this flow run's task runner is %s: the scoring shards "
            "run in this process. Start the flow through recpipe run/backfill, or "
            "flows.nightly.nightly_flow_for(config), to run them on Dask.",
            runner,
        )

    # Refuse a damaged tracking store (and back a sound one up) before anything writes to it.
    tracking.guard_store(ws, table=config.publish.table, logger=logger)
    client = tracking.client_for(ws)
    experiment_id = tracking.ensure_experiment(client, ws, config.tracking.experiment)
    parent_run_id = tracking.start_parent_run(
        client,
        experiment_id,
        f"nightly-{run_date.isoformat()}",
        {"run_date": run_date.isoformat(), "prefect.flow_run_id": run_id, "as_of": str(as_of)},
    )
    tracking.log_params(
        client, parent_run_id, tracking.flatten("", config.model_dump(mode="json", by_alias=True))
    )
    out: dict[str, Any] = {
        "run_id": run_id,
        "run_date": run_date.isoformat(),
        "as_of": as_of,
        "workspace": str(ws.root),
        "mlflow_uri": ws.mlflow_uri,
        "mlflow_parent_run_id": parent_run_id,
        "stage_seconds": clock.seconds,
        "stage_peak_mb": clock.peak_mb,
        "cached_stages": cache.hits,
        "status": "FAILED",
    }

    def ingest_now() -> dict:
        with ExitStack() as held:
            if config.ingest.source == "landing":  # the landing store is shared by all dates
                held.enter_context(
                    file_lock(
                        ws.locks / "landing-ingest.lock",
                        max(config.lock.wait_seconds, LANDING_LOCK_WAIT_SECONDS),
                        holder,
                        "a landing-folder ingest",
                    )
                )
            result = ingest_task(
                config.ingest, run_date, str(ws.raw(run_date)), workspace_root=str(ws.root)
            )
        if as_of:
            result = {**result, "as_of": as_of_task(result["interactions_path"], run_date)}
        return result

    try:
        with ExitStack() as held:
            clock.run(
                "lock",
                held.enter_context,
                run_lock(ws.locks, run_date, config.lock.wait_seconds, holder),
            )
            clock.run(
                "lock",
                held.enter_context,
                database_lock(
                    database_url, config.publish.table, run_date, config.lock.wait_seconds
                ),
            )
            stores = Stores(ws.root, database_url)
            # Finish or undo what a killed run left half-published, before anything else.
            out["recovered"] = clock.run(
                "lock",
                recover,
                stores,
                held_date=run_date,
                tables=(config.publish.table, config.publish.similar_table),
            )
            for item in out["recovered"]:
                logger.warning(
                    "recovery: %s %s", item["action"], item.get("publish_id") or item.get("name")
                )
            out["ingest"] = ingest = clock.run(
                "ingest",
                cache.run,
                "ingest",
                stage_cache.ingest_parts(config.ingest, run_date, as_of, ws.root),
                [ws.raw(run_date)],
                ingest_now,
            )
            validated_dir = ws.validated(run_date)
            accumulate = bool(ingest.get("incremental"))
            now_iso = cutoff(run_date).isoformat() if as_of else None
            out["validation"] = clock.run(
                "validate",
                cache.run,
                "validate",
                stage_cache.validate_parts(
                    ingest, config.validate_, validated_dir, ws.validation_root, accumulate, now_iso
                ),
                [validated_dir],
                lambda: validate_task(
                    ingest["interactions_path"],
                    str(validated_dir),
                    str(ws.validation_root),
                    config.validate_,
                    now_iso,
                    items_path=ingest.get("items_path"),
                    users_path=ingest.get("users_path"),
                    accumulate=accumulate,
                ),
            )
            validated_path = str(validated_dir / "interactions.parquet")
            features_dir = ws.features(run_date)
            out["features"] = features = clock.run(
                "features",
                cache.run,
                "features",
                stage_cache.features_parts(validated_path, config.features),
                [features_dir],
                lambda: _features_in_partitions(validated_path, str(features_dir), config.features),
            )

            data_tags = {
                "data.fingerprint": tracking.fingerprint(features["features_dir"]),
                "data.n_train": str(features["n_train"]),
                "data.n_valid": str(features["n_valid"]),
                "data.first_event": features["first_event"],
                "data.last_event": features["last_event"],
                "run_date": run_date.isoformat(),
                "prefect.flow_run_id": run_id,
            }
            for tag, value in data_tags.items():
                client.set_tag(parent_run_id, tag, value)

            results = []
            for name in config.train.models:

                def train_and_evaluate(name: str = name) -> dict:
                    trained = clock.run(
                        "train",
                        train_task,
                        name,
                        config.train,
                        features["features_dir"],
                        str(ws.models(run_date)),
                        str(ws.root),
                        experiment_id,
                        parent_run_id,
                        data_tags,
                        items_path=ingest.get("items_path"),
                    )
                    return clock.run(
                        "evaluate",
                        evaluate_task,
                        trained,
                        features["features_dir"],
                        config.evaluate.k,
                        str(ws.root),
                    )

                # always leave a marker; reuse it only when cache.reuse_models is on
                result = cache.run(
                    f"train-{name}",
                    stage_cache.model_parts(
                        name,
                        config.train,
                        features["features_dir"],
                        ingest.get("items_path"),
                        config.evaluate.k,
                    ),
                    [ws.models(run_date) / name],
                    train_and_evaluate,
                    still_valid=lambda r: _mlflow_run_finished(client, r["run_id"]),
                    reuse=config.cache.reuse_models,
                )
                if f"train-{name}" in cache.hits:
                    client.set_tag(parent_run_id, f"train.reused.{name}", result["run_id"])
                    clock.seconds.setdefault("train", 0.0)
                    clock.seconds.setdefault("evaluate", 0.0)
                results.append(result)
            out["models"] = [
                {
                    "model": r["model"],
                    "run_id": r["run_id"],
                    "train_seconds": r["train_seconds"],
                    "metrics": r["metrics"],
                    "reused": f"train-{r['model']}" in cache.hits,
                }
                for r in results
            ]
            out["promotion"] = clock.run(
                "promote",
                promote_task,
                results,
                features["features_dir"],
                config.evaluate.primary_metric,
                config.evaluate.k,
                config.evaluate.promotion_tolerance,
                config.tracking.registered_model,
                str(ws.root),
                parent_run_id,
            )
            out["scoring"] = scored = clock.run(
                "score",
                _score_in_shards,
                validated_path,
                ingest.get("items_path"),
                config.tracking.registered_model,
                str(ws.root),
                config.score,
                run_id,
                run_date,
                str(ws.scores(run_date)),
                out["promotion"].get("serving_version"),
            )
            if config.publish.validate_output:
                scored["output_check"] = clock.run(
                    "check",
                    check_output_task,
                    scored["path"],
                    scored["shard_paths"],
                    ingest.get("items_path"),
                    config.score.deny_items,
                    str(config.score.deny_list_path) if config.score.deny_list_path else None,
                    config.score.respect_available,
                    config.score.k,
                    str(ws.validation_root),
                    scored["items_vocab_path"],
                )
            out["monitor"] = clock.run(
                "monitor",
                monitor_task,
                scored["path"],
                validated_path,
                str(ws.tables / config.publish.table),
                run_date,
                config.monitor,
                str(ws.root),
                parent_run_id,
            )
            outputs = [Output(config.publish.table, RECOMMENDATIONS, Path(scored["path"]))]
            if scored["similar_path"]:
                outputs.append(
                    Output(
                        config.publish.similar_table, SIMILAR_ITEMS, Path(scored["similar_path"])
                    )
                )
            promotion = out["promotion"]
            move = None
            if promotion.get("move_alias"):
                move = ChampionMove(
                    promotion["registered_name"],
                    promotion["serving_version"],
                    promotion["reason"],
                )
            out["published"] = clock.run(
                "publish",
                publish_task,
                str(ws.root),
                database_url,
                run_id,
                run_date,
                outputs,
                config.publish.keep_runs,
                move,
                config.publish.lake_retention_hours,
            )
        clock.run(
            "report",
            report_task,
            results,
            validated_path,
            scored["path"],
            config.score.k,
            str(ws.root),
            parent_run_id,
        )
        out["status"] = "COMPLETED"
    except BaseException as exc:
        out["failed_stage"] = clock.failed
        out["error"] = f"{type(exc).__name__}: {exc}"
        if getattr(exc, "figures", None) is not None:  # a monitor failure: keep its figures
            out["monitor"] = {"figures": exc.figures, "findings": exc.findings}  # type: ignore[attr-defined]
        raise
    finally:
        out["total_seconds"] = round(time.perf_counter() - started, 2)
        _close_parent_run(client, parent_run_id, out, cache, logger)
        publish_run_summary(out)
    return out


def _fan_out(task: Any, calls: list[tuple]) -> list[Any]:
    """Run ``task`` once per argument tuple: submitted to the cluster's workers on a Dask
    task runner, otherwise one after another here, so memory holds one piece at a time."""
    from prefect.context import TaskRunContext

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
    calls = [(plan, part, vocabularies["cutoff"]) for part in parts]
    counts = _fan_out(encode_partition_task, calls)
    return finish_features_task(plan, vocabularies, counts)


def _score_in_shards(*args: Any) -> dict:
    """Plan, score each user shard, finish."""
    from tasks.score import finish_scoring_task, plan_scoring_task, score_shard_task

    start = time.perf_counter()
    plan = plan_scoring_task(*args)
    parts = _fan_out(score_shard_task, [(plan, shard) for shard in range(len(plan.shards))])
    return finish_scoring_task(plan, parts, time.perf_counter() - start)


def task_runner_for(config: PipelineConfig) -> Any:
    """The task runner ``config.runner`` asks for (None: the flow's default)."""
    if config.runner.kind == "local":
        return None
    from prefect_dask import DaskTaskRunner

    if config.runner.address:
        return DaskTaskRunner(address=config.runner.address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": config.runner.workers,
            "threads_per_worker": config.runner.threads_per_worker,
            "processes": True,
            "dashboard_address": None,
        }
    )


def nightly_flow_for(config: PipelineConfig) -> Any:
    """``nightly`` on the task runner the config asks for."""
    runner = task_runner_for(config)
    return nightly if runner is None else nightly.with_options(task_runner=runner)


def _mlflow_run_finished(client: Any, run_id: str) -> bool:
    """A reused model's MLflow run must still exist, finished and not deleted."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        return False
    return run.info.status == "FINISHED" and run.info.lifecycle_stage == "active"


def _close_parent_run(client: Any, parent_run_id: str, out: dict, cache: Any, logger: Any) -> None:
    """Stage times, cache hits and the outcome on the MLflow parent run; FAILED on failure."""
    from tasks import tracking

    finished = out["status"] == "COMPLETED"
    try:
        tracking.log_metrics(
            client,
            parent_run_id,
            {f"stage_seconds.{k}": v for k, v in out["stage_seconds"].items()}
            | {"total_seconds": out["total_seconds"]},
        )
        client.set_tag(parent_run_id, "recpipe.cached_stages", ",".join(cache.hits) or "none")
        if not finished:
            client.set_tag(parent_run_id, "recpipe.failed_stage", out.get("failed_stage") or "")
            client.set_tag(parent_run_id, "recpipe.error", str(out.get("error", ""))[:5000])
        client.set_terminated(parent_run_id, status="FINISHED" if finished else "FAILED")
    except Exception as exc:  # never hide the stage's own error behind a tracking one
        if finished:
            raise
        logger.warning("could not record the failure on MLflow run %s: %s", parent_run_id, exc)
