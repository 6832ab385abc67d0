"""One refresh, from the landing folder's new files to the users' published rows.

:func:`run_refresh` is the whole refresh as a plain function (tests call it); the flow
(flows/refresh.py) passes ``step``, which runs each step as a Prefect task. The date is the
newest published run date; the refresh holds that date's run lock (the nightly's,
tasks/storage/locks.py), and, when it shares the nightly's landing store, the lock of the
date whose partition it appends to, so a nightly never misses events a refresh stored.
While the nightly of the date runs, the refresh waits up to ``refresh.wait_seconds``
(``when_nightly_running = "wait"``) or stops at once with status ``skipped``, leaving
the new files for the next refresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.errors import RecpipeError

if TYPE_CHECKING:
    from expectations.runner import SuiteRunner

Step = Callable[..., Any]


class NothingPublishedError(RecpipeError):
    """No run date is published yet: a refresh has no rows to update."""


def _direct(step_name: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    return fn(**kwargs)


def newest_published(database_url: str, table: str) -> date | None:
    from tasks.storage import database as db

    engine = db.make_engine(database_url)
    try:
        return db.newest_date(engine, table)
    finally:
        engine.dispose()


@contextmanager
def date_locks(
    lock_dir: Path,
    dates: list[date],
    config: Any,
    holder: dict,
    database_url: str,
    table: str,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """The run locks of ``dates`` (and the PostgreSQL advisory lock of the first): at
    once, or, when a nightly holds one, after waiting (``wait``) or never (``skip``:
    LockError)."""
    from tasks.storage.locks import LockError, database_lock, run_lock

    with ExitStack() as held:
        for day in dates:
            try:
                held.enter_context(run_lock(lock_dir, day, 0, holder))
            except LockError as exc:
                if config.when_nightly_running == "skip":
                    raise
                if on_wait is not None:
                    on_wait(str(exc).split(";")[0])
                held.enter_context(run_lock(lock_dir, day, config.wait_seconds, holder))
        wait = 0 if config.when_nightly_running == "skip" else config.wait_seconds
        held.enter_context(database_lock(database_url, table, dates[0], wait))
        yield


def run_refresh(
    config: Any,
    run_id: str,
    step: Step = _direct,
    on_wait: Callable[[str], None] | None = None,
    today: date | None = None,
) -> dict:
    """Refresh the users with new events (see the module docstring); the summary."""
    from tasks.refresh import events, upsert
    from tasks.storage.locks import LockError, holder_info
    from tasks.storage.workspace import Workspace

    started = time.perf_counter()
    ws = Workspace.at(config.workspace)
    url = config.publish.url(ws.database_url)
    table = config.publish.table
    today = today or datetime.now(UTC).date()
    out: dict[str, Any] = {"run_id": run_id, "status": "running", "workspace": str(ws.root)}
    for _ in range(3):  # a nightly may publish a newer date while this refresh waits
        run_date = newest_published(url, table)
        if run_date is None:
            raise NothingPublishedError(
                f"refresh: table {table!r} has no published run date yet; expected the "
                "nightly to have published once; run 'recpipe run' first"
            )
        source = events.source_for(config, ws.root, run_date, today)
        dates = [run_date] + ([source.ingest_date] if source.shared else [])
        holder = holder_info(run_id, run_date=run_date.isoformat(), refresh=True)
        try:
            with date_locks(ws.locks, dates, config.refresh, holder, url, table, on_wait):
                if newest_published(url, table) != run_date:
                    continue
                out.update(run_date=run_date.isoformat(), locked_after=_since(started))
                out["recovered"] = upsert.recover(ws.root, url, run_date)
                _refresh_date(config, ws, run_date, source, run_id, step, out, started)
        except LockError as exc:
            out.update(status="skipped", reason=str(exc).split(";")[0])
        break
    else:
        out.update(status="skipped", reason="newer run dates kept being published meanwhile")
    out["seconds"] = _since(started)
    return out


@dataclass(frozen=True)
class _Batch:
    """This refresh's new events and where its files go."""

    name: str
    folder: Path  # <workspace>/refresh/run_date=D
    events: Any  # pandas DataFrame
    stats: dict
    items_path: Path | None


def _refresh_date(
    config: Any,
    ws: Any,
    run_date: date,
    source: Any,
    run_id: str,
    step: Step,
    out: dict,
    started: float,
) -> None:
    from tasks.refresh import events

    folder = ws.root / "refresh" / f"run_date={run_date.isoformat()}"
    name = f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}_{run_id}"
    new, stats = step("read-events", events.read_new_events, config=config, source=source)
    items_path = ws.root / "raw" / f"ingest_date={run_date.isoformat()}" / "items.parquet"
    batch = _Batch(name, folder, new, stats, items_path if items_path.is_file() else None)
    runner = _Runner(ws.validation_root, f"refresh-{name}")
    try:
        _validate_score_publish(config, ws, run_date, run_id, step, out, runner, batch)
    except Exception:
        if runner.started:
            with suppress(Exception):  # the error at hand matters more than its pages
                runner.get().finish()
        raise
    out["published_seconds"] = _since(started) if out["status"] == "published" else None
    if runner.started:  # the Data Docs of both suites, built once, after publishing
        out["data_docs_index"] = str(runner.get().finish())


class _Runner:
    """The refresh's one GX ``SuiteRunner``, made when a suite first runs."""

    def __init__(self, gx_root: Path, run_name: str) -> None:
        self.gx_root, self.run_name = gx_root, run_name
        self._runner: SuiteRunner | None = None

    @property
    def started(self) -> bool:
        return self._runner is not None

    def get(self) -> Any:
        if self._runner is None:
            from expectations.runner import SuiteRunner
            from tasks.storage.shared_files import locked

            self._runner = SuiteRunner(self.gx_root, self.run_name, lock=locked)
        return self._runner


def _validate_score_publish(
    config: Any,
    ws: Any,
    run_date: date,
    run_id: str,
    step: Step,
    out: dict,
    runner: _Runner,
    batch: _Batch,
) -> None:
    from tasks.refresh import edges, events, rescore, upsert

    batch_dir, new, stats = batch.folder, batch.events, batch.stats
    validation = step(
        "validate-events",
        events.validate_events,
        events=new,
        config=config.validate_,
        gx_root=ws.validation_root,
        items_path=batch.items_path,
        batch_dir=batch_dir,
        name=batch.name,
        runner=runner.get() if len(new) else None,
    )
    pending = events.pending_batches(batch_dir)
    users = events.batch_users(pending)
    every_batch = events.batches(batch_dir)  # published and pending, oldest first
    validated = ws.root / "validated" / f"run_date={run_date.isoformat()}" / "interactions.parquet"
    update = None
    if config.ingest.social.path is not None:  # relations to read again
        update = step(
            "read-edges",
            edges.read_graph_update,
            config=config,
            workspace=ws,
            run_date=run_date,
            batch_dir=batch_dir,
            name=batch.name,
            known_users=events.known_users(validated, every_batch),
        )
    history = None
    if update is not None:
        out["edges"] = update.stats
        seen = set(users)
        users += [u for u in update.changed if u not in seen]
    if users:
        history = events.histories(validated, every_batch, users)
    if update is not None and history is not None:
        left = update.unscorable(set(history["user_id"].astype(str)))
        users = [u for u in users if u not in left]
        out["edges"]["users_left_for_the_night"] = len(left)
    out.update(
        files=stats["files_ingested"],
        events=len(new),
        validation={k: v for k, v in validation.items() if k != "batch"},
        pending_batches=len(pending),
        users=len(users),
        newest_arrival=stats["newest_arrival"],
    )
    if not users or history is None:
        out["status"] = "nothing new"
        return
    scored = step(
        "score-users",
        rescore.score_users,
        workspace_root=ws.root,
        registered_name=config.tracking.registered_model,
        config=config.score,
        run_date=run_date,
        run_id=run_id,
        history=history,
        validated_path=validated,
        items_path=batch.items_path,
        out_path=batch_dir / "scores" / f"{batch.name}.parquet",
        positive=(config.features.positive, config.features.positive_min_value),
        graph=update.graph if update is not None else None,
        users=users,
        batch_paths=every_batch,
        layer_dir=batch_dir / "serving" / batch.name,
    )
    if config.publish.validate_output:
        step(
            "check-output",
            rescore.check_rows,
            scored=scored,
            history=history,
            k=config.score.k,
            gx_root=ws.validation_root,
            runner=runner.get(),
        )
    published = step(
        "publish-users",
        upsert.publish_users,
        root=ws.root,
        database_url=config.publish.url(ws.database_url),
        table=config.publish.table,
        run_date=run_date,
        run_id=run_id,
        rows_path=Path(scored["path"]),
        user_ids=users,
    )
    events.mark_published(batch_dir, pending)
    if update is not None:
        edges.keep_graph(batch_dir, update.graph)
    out["served_context"] = step(
        "record-serving-context",
        record_layer,
        workspace_root=ws.root,
        registered_name=config.tracking.registered_model,
        version=scored["version"],
        run_date=run_date,
        layer=Path(scored["layer"]),
        name=f"{published['refreshed_at']}-{run_id}",
    )
    Path(scored["path"]).unlink(missing_ok=True)
    arrival = stats["newest_arrival"]
    out.update(
        status="published",
        rows=published["rows"],
        model=scored["model"],
        version=scored["version"],
        users_by_strategy=scored["users_by_strategy"],
        item_statistics=scored["item_statistics"],
        publish_id=published["publish_id"],
        lake_version=published["lake_version"],
        refreshed_at=published["refreshed_at"],
        arrival_to_published_seconds=(
            round(time.time() - arrival, 2) if arrival is not None else None
        ),
    )


def record_layer(
    workspace_root: Path,
    registered_name: str,
    version: str,
    run_date: date,
    layer: Path,
    name: str,
) -> str | None:
    """Upload the refresh's publishing context under the night's on the version's run
    (tasks/tracking/serving.py), so the served model answers these users with the rows
    just published; its artifact path, or None when the night published from another
    version. The local copy is removed once uploaded."""
    import shutil

    from tasks import tracking
    from tasks.storage.workspace import Workspace
    from tasks.tracking.serving import log_refresh_layer

    client = tracking.client_for(Workspace.at(workspace_root))
    model_run = client.get_model_version(registered_name, version).run_id
    stamp = "".join(ch for ch in name if ch.isalnum() or ch == "-")
    path = log_refresh_layer(client, model_run, run_date, layer, stamp)
    shutil.rmtree(layer, ignore_errors=True)
    return path


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)
