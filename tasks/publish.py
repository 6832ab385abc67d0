"""Publish: a run's tables, in the database and in the lake, with one commit point.

Tables: ``recommendations`` (the product's output, docs/reference/tables.md) and ``similar_items``
(item pages), each in two stores: a database (SQLite in the workspace by default, any
SQLAlchemy URL, e.g. PostgreSQL) and a Delta Lake table under ``<workspace>/tables``.

A publish (:func:`publish_night`) goes:

1. the journal records the intent, and the run's files are linked into
   ``<workspace>/publish/<publish id>/`` (a later run of the date cannot overwrite them);
2. the rows are loaded into staging tables named for this publish;
3. ONE database transaction swaps every table's run date and logs the publish:
   **the commit point**. Before it nothing is visible; after it the publish is
   decided and everything that follows is redone until it is finished;
4. each lake table gets its date in one Delta commit;
5. the journal says ``done``; then the side effects: the ``champion`` alias moves (only
   for a run date not older than the newest published one), staging is cleaned up and
   lake files older than the retention are vacuumed.

A process killed anywhere leaves a journal record that is not ``done``; every run (and
``recpipe doctor``) finishes or undoes it first (:mod:`tasks.publishing.recovery`). A
rollback (:func:`rollback_date`) publishes a date's previous version again the same way.
The steps are in :mod:`tasks.publishing`; this module runs them.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.errors import PublishError
from tasks.publishing.champion import ChampionMove
from tasks.publishing.commit import commit_database as _commit_database
from tasks.publishing.commit import roll_forward as _roll_forward
from tasks.publishing.commit import state_advice as _state_advice
from tasks.publishing.commit import summary as _summary
from tasks.publishing.rollback import previous_version, restored_outputs
from tasks.publishing.staging import check_writable as _check_writable
from tasks.publishing.staging import stage_files as _stage_files
from tasks.publishing.stores import Output, Stores
from tasks.storage import database as db
from tasks.storage import journal
from tasks.storage.cache import StageResult
from tasks.storage.faults import checkpoint


def rollback_date(stores: Stores, run_date: date, tables: list[tuple[str, str]]) -> dict:
    """Publish ``run_date``'s previous version again, in both stores (``tables``:
    ``(name, kind)``, the first the recommendations table).

    The previous version is the newest earlier lake commit of that date that holds rows
    of another run; its rows (their ``run_id`` included) come back bit for bit, through
    the same journaled publish as a nightly run.
    """
    target = previous_version(stores, run_date, tables[0][0])
    rollback_id = f"rollback-{uuid.uuid4().hex[:12]}"
    folder = stores.staged / f"rollback-src-{rollback_id}"
    folder.mkdir(parents=True)
    try:
        outputs = restored_outputs(stores, run_date, tables, target, folder)
        result = publish_night(
            stores,
            rollback_id,
            run_date,
            outputs,
            source_run_id=target["source_run_id"],
            stamp=False,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {**result, "restored_run_id": target["source_run_id"], "from_version": target["version"]}


def publish_night(
    stores: Stores,
    run_id: str,
    run_date: date,
    outputs: list[Output],
    keep_runs: int | None = None,
    champion: ChampionMove | None = None,
    source_run_id: str | None = None,
    retention_hours: float = 168.0,
    stamp: bool = True,
    covers: dict[str, list[str]] | None = None,
) -> dict:
    """Publish ``outputs`` for ``run_date`` to both stores (see the module docstring).

    Idempotent per ``(run_date, run_id)``: called again after a failure (a task retry),
    it finishes the same publish instead of starting another. ``stamp``: the rows'
    ``run_id`` becomes ``run_id`` (the run that publishes them, also when its scores were
    reused from an earlier run of the date); off for a rollback, whose rows keep theirs.
    ``covers``: per table, earlier publishes of the date whose lake commits were lost and
    whose rows this publish brings back (``recpipe doctor --repair``).
    """
    pid = journal.publish_id(run_date, run_id)
    path = journal.path_for(stores.journal, pid)
    record = journal.read(path) if path.exists() else None
    if record is not None and record["state"] == "done":
        return _summary(stores, record)
    if record is None or record["state"] == "rolled_back":
        _check_writable(stores, outputs)
    engine = db.make_engine(stores.database_url)
    try:
        if record is None or record["state"] == "rolled_back":
            record = {
                "publish_id": pid,
                "run_id": run_id,
                "source_run_id": source_run_id or run_id,
                "run_date": run_date.isoformat(),
                "database": journal.database_digest(stores.database_url),
                "keep_runs": keep_runs,
                "retention_hours": retention_hours,
                "stamp": run_id if stamp else None,
                "champion": asdict(champion) if champion else None,
                "created_at": journal.now(),
                "refreshed_at": journal.now(),
                "lake_versions": {},
                "covers": covers or {},
                "tables": _stage_files(stores, pid, outputs),
            }
            record = journal.advance(stores.journal, record, "intent")
            checkpoint("publish:intent")
        if record["state"] == "intent":
            record = _commit_database(stores, engine, record)
        return _roll_forward(stores, engine, record)
    except PublishError:
        raise
    except Exception as exc:
        raise PublishError(
            f"publishing {[o.name for o in outputs]} for {run_date} to "
            f"{engine.url.render_as_string(hide_password=True)} failed: "
            f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}; "
            + _state_advice(stores, engine, pid, [(o.name, o.kind) for o in outputs])
        ) from exc
    finally:
        engine.dispose()


class Published(StageResult):
    """Where the night's tables were published and what the commit did (``parquet``,
    ``similar`` and the like ride along)."""

    publish_id: str
    lake: str
    lake_version: int | None
    rows: int
    table: str
    database: str
    pruned: list[Any]
    champion_outcome: str | None


def publish(
    workspace_root: str,
    database_url: str,
    run_id: str,
    run_date: date,
    outputs: list[Output],
    keep_runs: int,
    champion: ChampionMove | None,
    retention_hours: float,
) -> Published:
    """Both tables to both stores with one commit point, then the champion alias
    (:func:`publish_night`). First the dates the night keeps must agree in both stores
    (:func:`tasks.publishing.verify.check_before_publish`), or nothing is published."""
    from tasks.publishing.verify import check_before_publish

    stores = Stores(Path(workspace_root), database_url)
    check_before_publish(stores, [(o.name, o.kind) for o in outputs], run_date)
    return Published(
        **publish_night(
            stores, run_id, run_date, outputs, keep_runs, champion, retention_hours=retention_hours
        )
    )


publish_task = task(name="publish", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)(
    publish
)


def record_serving_context(
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
    is removed once uploaded): ``(that run, the layer's artifact path)``;
    ``tasks.tracking.serving.point_at`` makes it the served one once the tables are
    published."""
    from tasks.refresh.rescore import newest_event
    from tasks.scoring.serving import write_layer
    from tasks.storage.workspace import Workspace
    from tasks.tracking.runs import client_for
    from tasks.tracking.serving import log_layer, night_path

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


record_serving_context_task = task(name="serving-context", cache_policy=NO_CACHE)(
    record_serving_context
)
