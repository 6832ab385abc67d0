"""Opening and closing a night: the MLflow parent run, the run date's locks, recovery,
and the outcome in the run summary.

The parent run is created first, so any failure is recorded on it; at the end it gets
the stage times, the cache hits and the outcome (FAILED with the stage and the error).
The locks hold from ingest to publish: a flock per run date survives ``kill -9`` and
needs no server (a Prefect concurrency limit needs one, and its slots outlive a killed
process until their lease expires).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flows.night_context import NightContext


def open_parent_run(night: NightContext) -> None:
    """Refuse a damaged tracking store (and back a sound one up) before writing to it; the
    experiment and the night's parent run, with the whole config as its params."""
    from tasks import tracking

    config, ws = night.config, night.ws
    tracking.guard_store(ws, table=config.publish.table, logger=night.logger)
    night.client = tracking.client_for(ws)
    night.experiment_id = tracking.ensure_experiment(night.client, ws, config.tracking.experiment)
    night.parent_run_id = tracking.start_parent_run(
        night.client,
        night.experiment_id,
        f"nightly-{night.run_date.isoformat()}",
        {
            "run_date": night.run_date.isoformat(),
            "prefect.flow_run_id": night.run_id,
            "as_of": str(night.as_of),
        },
    )
    tracking.log_params(
        night.client,
        night.parent_run_id,
        tracking.flatten("", config.model_dump(mode="json", by_alias=True)),
    )


def first_summary(night: NightContext) -> dict[str, Any]:
    """The run summary before any stage ran (a run that fails early still has one)."""
    return {
        "run_id": night.run_id,
        "run_date": night.run_date.isoformat(),
        "as_of": night.as_of,
        "workspace": str(night.ws.root),
        "mlflow_uri": night.ws.mlflow_uri,
        "mlflow_parent_run_id": night.parent_run_id,
        "mlflow_experiment_id": night.experiment_id,
        "stage_seconds": night.clock.seconds,
        "stage_peak_mb": night.clock.peak_mb,
        "cached_stages": night.stage_cache.hits,
        "status": "FAILED",
    }


@contextmanager
def date_locks(night: NightContext) -> Iterator[None]:
    """The date's run lock (and PostgreSQL advisory lock) from ingest to publish, and the
    erasure lock shared with other nights."""
    from tasks.forget.run import erasure_lock
    from tasks.storage.locks import database_lock, run_lock

    wait = night.config.lock.wait_seconds
    with ExitStack() as held:
        night.clock.run(
            "lock",
            held.enter_context,
            run_lock(night.ws.locks, night.run_date, wait, night.holder),
        )
        night.clock.run(
            "lock",
            held.enter_context,
            database_lock(night.database_url, night.config.publish.table, night.run_date, wait),
        )
        held.enter_context(erasure_lock(night.ws.locks, wait, shared=True, holder={}))
        yield


def recover(night: NightContext) -> list[dict]:
    """Finish or undo what a killed run left half-published, before anything else."""
    from tasks.publishing.recovery import recover
    from tasks.publishing.stores import Stores

    publish = night.config.publish
    done = night.clock.run(
        "lock",
        recover,
        Stores(night.ws.root, night.database_url),
        held_date=night.run_date,
        tables=(publish.table, publish.similar_table),
    )
    for item in done:
        night.logger.warning(
            "recovery: %s %s", item["action"], item.get("publish_id") or item.get("name")
        )
    night.out["recovered"] = done
    return done


def record_failure(night: NightContext, exc: BaseException) -> None:
    """The failed stage, the error and what was published, in the summary and on ``exc``
    (for the CLI's failure line, flows/cli/failure.py)."""
    from tasks.publishing.stores import Stores
    from tasks.storage.published import publication

    out = night.out
    out["failed_stage"] = night.clock.failed
    out["error"] = f"{type(exc).__name__}: {exc}"
    facts = publication(
        Stores(night.ws.root, night.database_url).journal,
        night.run_date,
        night.run_id,
        out.get("published"),
    )
    out["publication"] = facts
    with suppress(AttributeError):
        exc.recpipe_publication = facts  # type: ignore[attr-defined]
    if getattr(exc, "figures", None) is not None:  # a monitor failure: keep its figures
        out["monitor"] = {"figures": exc.figures, "findings": exc.findings}  # type: ignore[attr-defined]


def close(night: NightContext) -> None:
    """Stage times and the outcome on the MLflow parent run; the summary artifact."""
    from tasks.report import publish_run_summary

    night.out["total_seconds"] = round(time.perf_counter() - night.started, 2)
    close_parent_run(night)
    publish_run_summary(night.out)
    night.ws.tighten_databases()  # created by libraries, maybe under a lax umask


def close_parent_run(night: NightContext) -> None:
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
        client.set_tag(run, "recpipe.cached_stages", ",".join(night.stage_cache.hits) or "none")
        outcome = (out.get("published") or {}).get("champion_outcome")
        if outcome:  # what the alias did once the tables committed
            client.set_tag(run, "recpipe.champion_outcome", outcome[:5000])
        if not finished:
            client.set_tag(run, "recpipe.failed_stage", out.get("failed_stage") or "")
            client.set_tag(run, "recpipe.error", str(out.get("error", ""))[:5000])
        client.set_terminated(run, status="FINISHED" if finished else "FAILED")
    except Exception as exc:  # never hide the stage's own error behind a tracking one
        if finished:
            raise
        cause = " ".join(str(getattr(exc, "orig", None) or exc).split())[:200]
        night.logger.warning("could not record the failure on MLflow run %s: %s", run, cause)
