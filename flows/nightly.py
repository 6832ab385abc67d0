"""The nightly flow: ingest -> validate -> features -> train -> evaluate -> promote -> score -> publish.

Wiring only: every stage is a task in ``tasks/``; data moves between stages as
files in the workspace, and tasks exchange small dicts of paths and counts.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from prefect import flow, get_run_logger

from tasks.config import PipelineConfig, load_config


class _StageClock:
    """Runs stages in order and records the wall time of each."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def run(self, stage: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds[stage] = round(
                self.seconds.get(stage, 0.0) + time.perf_counter() - start, 2
            )


def _flow_run_id() -> str:
    from prefect.runtime import flow_run

    return str(flow_run.id or uuid.uuid4())


@flow(name="recpipe-nightly", log_prints=True)
def nightly(config: PipelineConfig | None = None, run_date: date | None = None) -> dict:
    """Turn today's interactions into a fresh, published recommendations table."""
    from tasks import tracking
    from tasks.check_output import check_output_task
    from tasks.evaluate import evaluate_task
    from tasks.features import build_features_task
    from tasks.ingest import ingest_task
    from tasks.promote import promote_task
    from tasks.publish import publish_task
    from tasks.report import report_task
    from tasks.score import score_task
    from tasks.train import train_task
    from tasks.validate import validate_task
    from tasks.workspace import Workspace

    logger = get_run_logger()
    config = config or load_config()
    run_date = run_date or datetime.now(UTC).date()
    ws = Workspace.at(config.workspace)
    run_id = _flow_run_id()
    clock = _StageClock()
    started = time.perf_counter()
    logger.info("recpipe nightly for %s in workspace %s", run_date, ws.root)

    ingest = clock.run(
        "ingest",
        ingest_task,
        config.ingest,
        run_date,
        str(ws.raw(run_date)),
        workspace_root=str(ws.root),
    )
    validated_dir = ws.validated(run_date)
    validation = clock.run(
        "validate",
        validate_task,
        ingest["interactions_path"],
        str(validated_dir),
        str(ws.validation_root),
        config.validate_,
        items_path=ingest.get("items_path"),
        users_path=ingest.get("users_path"),
        accumulate=bool(ingest.get("incremental")),
    )
    validated_path = str(validated_dir / "interactions.parquet")
    features = clock.run(
        "features", build_features_task, validated_path, str(ws.features(run_date)), config.features
    )

    client = tracking.client_for(ws)
    experiment_id = tracking.ensure_experiment(client, ws, config.tracking.experiment)
    data_tags = {
        "data.fingerprint": tracking.fingerprint(features["features_dir"]),
        "data.n_train": str(features["n_train"]),
        "data.n_valid": str(features["n_valid"]),
        "data.first_event": features["first_event"],
        "data.last_event": features["last_event"],
        "run_date": run_date.isoformat(),
        "prefect.flow_run_id": run_id,
    }
    parent_run_id = tracking.start_parent_run(
        client, experiment_id, f"nightly-{run_date.isoformat()}", data_tags
    )
    tracking.log_params(
        client, parent_run_id, tracking.flatten("", config.model_dump(mode="json", by_alias=True))
    )
    status = "FAILED"
    try:
        results = []
        for name in config.train.models:
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
            )
            results.append(
                clock.run(
                    "evaluate",
                    evaluate_task,
                    trained,
                    features["features_dir"],
                    config.evaluate.k,
                    str(ws.root),
                )
            )
        promotion = clock.run(
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
        scored = clock.run(
            "score",
            score_task,
            validated_path,
            ingest.get("items_path"),
            config.tracking.registered_model,
            str(ws.root),
            config.score,
            run_id,
            run_date,
            str(ws.scores(run_date)),
        )
        if config.publish.validate_output:
            scored["output_check"] = clock.run(
                "check",
                check_output_task,
                scored["path"],
                validated_path,
                ingest.get("items_path"),
                config.score.deny_items,
                str(config.score.deny_list_path) if config.score.deny_list_path else None,
                config.score.respect_available,
                config.score.k,
                str(ws.validation_root),
                scored["items_vocab_path"],
            )
        published = clock.run(
            "publish",
            publish_task,
            scored["path"],
            scored["similar_path"],
            str(ws.tables),
            config.publish.database_url or ws.database_url,
            config.publish.table,
            config.publish.similar_table,
            run_date,
            config.publish.keep_runs,
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
        status = "FINISHED"
    finally:
        tracking.log_metrics(
            client, parent_run_id, {f"stage_seconds.{k}": v for k, v in clock.seconds.items()}
        )
        client.set_terminated(parent_run_id, status=status)

    return {
        "run_id": run_id,
        "run_date": run_date.isoformat(),
        "workspace": str(ws.root),
        "total_seconds": round(time.perf_counter() - started, 2),
        "stage_seconds": clock.seconds,
        "ingest": ingest,
        "validation": validation,
        "features": features,
        "models": [
            {
                "model": r["model"],
                "run_id": r["run_id"],
                "train_seconds": r["train_seconds"],
                "metrics": r["metrics"],
            }
            for r in results
        ],
        "promotion": promotion,
        "scoring": scored,
        "published": published,
        "mlflow_uri": ws.mlflow_uri,
        "mlflow_parent_run_id": parent_run_id,
    }
