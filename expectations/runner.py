"""Run suites in a GX context of this run's own; publish the results to the shared Data Docs.

Each ``SuiteRunner`` validates in an ephemeral (in-memory) GX context: its suites, data
source, validation definitions and checkpoints belong to this run alone, so nights of
different dates validating at the same time never see each other's. (They once shared
one file context, where one night's update of suite 'interactions' made the other's
validation fail with "ExpectationSuite 'interactions' not found" or "has changed".)

What operators read stays where it was, in the GX file project under ``<gx_root>/gx``:
every validation result, each suite as last run, and one Data Docs site listing the
results of all runs (``gx/uncommitted/data_docs/local_site/index.html``). A runner writes
there only under a short lock on ``<gx_root>/gx.lock``, taken with the ``lock`` its caller
passes (the pipeline's flock, ``tasks.storage.shared_files.locked``): each result as soon as it is
made, under this run's unique run name (``<label>-<8 hex>``, so two runs never share a
key), then at ``finish`` its suites, its pages and the index (a static page that reads
without internet, ``expectations/docs_site.py``). A suite run with COMPLETE results (the
item and user tables) lists its unexpected rows by the frame's ``__row__``
column; the interactions suite runs with SUMMARY results on flags computed beforehand
(``expectations/interactions.py``), so no per-row list is built at scale. What reaches
that store is an HTML-escaped copy of each result (``_escaped``): GX renders unexpected
values unescaped, and they come from input.
"""

from __future__ import annotations

import copy
import os
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse
from urllib.request import url2pathname

import pandas as pd

from expectations.common import ROW_COLUMN
from expectations.errors import ColumnTypeError

DATASOURCE_NAME = "recpipe"
BATCH_DEFINITION_NAME = "whole_dataframe"
LOCK_WAIT_SECONDS = 300.0  # a Data Docs build takes seconds; this long means a hung holder


class StoreLock(Protocol):
    """Holds an exclusive lock on ``<path>.lock`` for one short change, waiting at most
    ``wait_seconds`` for another holder (then raising); ``what`` names the locked thing in
    that error."""

    def __call__(
        self, path: Path, wait_seconds: float, *, what: str
    ) -> AbstractContextManager[object]: ...


def run_suites(
    gx_root: Path,
    batches: list[tuple[Any, pd.DataFrame]],
    run_name: str | None = None,
    *,
    lock: StoreLock,
) -> tuple[dict[str, list], Path | None]:
    """Validate each ``(suite, frame)``; return ``{suite name: results}`` and the docs index."""
    runner = SuiteRunner(gx_root, run_name, lock=lock)
    out = {suite.name: runner.run(suite, frame) for suite, frame in batches}
    return out, runner.finish()


class SuiteRunner:
    """This run's own GX context for several validations, then one Data Docs build.

    ``run`` may be called more than once with the same suite (one user partition of a
    large batch after another): each call publishes its own validation result, and no
    frame or result is kept once its results are returned. ``run_name`` labels this run's
    results in the Data Docs (``validate`` passes ``run_date=YYYY-MM-DD``). ``lock``
    serializes the writes to the shared GX project with other processes' runners.
    """

    def __init__(self, gx_root: Path, run_name: str | None = None, *, lock: StoreLock) -> None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        import great_expectations as gx

        gx_root = Path(gx_root)
        gx_root.mkdir(parents=True, exist_ok=True)
        self._gx = gx
        self._root = gx_root
        self._lock = lock
        self.run_name = f"{run_name or 'recpipe'}-{uuid.uuid4().hex[:8]}"
        with self._store_locked():  # the first run creates the project; _quiet may save it
            self._shared = gx.get_context(mode="file", project_root_dir=gx_root)
            _quiet(self._shared)
        # Opened last, so it is also GX's current context: the lookups GX makes by name
        # (a stored checkpoint's validation definitions) find this run's objects.
        self.context = gx.get_context(mode="ephemeral", project_config=_ephemeral_config())
        self._source = self.context.data_sources.add_pandas(name=DATASOURCE_NAME)
        self._checkpoints: dict[str, Any] = {}
        self._suites: dict[str, Any] = {}
        self._built: list[Any] = []

    @contextmanager
    def _store_locked(self) -> Iterator[None]:
        # <gx_root>/gx.lock, beside the shared GX project <gx_root>/gx
        with self._lock(self._root / "gx", LOCK_WAIT_SECONDS, what="the GX store"):
            yield

    def _checkpoint(self, suite: Any, result_format: str) -> Any:
        if suite.name in self._checkpoints:
            return self._checkpoints[suite.name]
        gx, context = self._gx, self.context
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
        )

        asset = self._source.add_dataframe_asset(name=suite.name)
        batch_definition = asset.add_batch_definition_whole_dataframe(name=BATCH_DEFINITION_NAME)
        stored = context.suites.add_or_update(suite)
        definition = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=suite.name, data=batch_definition, suite=stored)
        )
        checkpoint = context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=suite.name,
                validation_definitions=[definition],
                actions=[],
                result_format=(
                    {"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_COLUMN]}
                    if result_format == "COMPLETE"
                    else {"result_format": result_format}
                ),
            )
        )
        self._suites[suite.name] = stored
        self._built.append(ExpectationSuiteIdentifier(name=suite.name))
        self._checkpoints[suite.name] = checkpoint
        return checkpoint

    def run(self, suite: Any, frame: pd.DataFrame, result_format: str = "COMPLETE") -> list:
        """Validate ``frame`` against ``suite``; the results, GX errors raised as
        ColumnTypeError.

        ``COMPLETE`` lists every unexpected row (by ``__row__``), for :func:`flagged_rows`;
        ``SUMMARY`` (a suite whose rows are flagged before GX runs, see
        ``expectations/interactions.py``) counts them and keeps a sample. A suite keeps the
        format of its first run in this runner."""
        from great_expectations.core.run_identifier import RunIdentifier

        # run_time given: without it GX reads a date in the run name as the run's time
        run_id = RunIdentifier(run_name=self.run_name, run_time=datetime.now(UTC))
        run = self._checkpoint(suite, result_format).run(
            batch_parameters={"dataframe": frame}, run_id=run_id
        )
        ((identifier, validation),) = run.run_results.items()
        with self._store_locked():  # only an escaped copy reaches the store and the docs
            self._shared.validation_results_store.set(identifier, _escaped(validation))
        self.context.validation_results_store.remove_key(identifier)
        self._built.append(identifier)
        _forget_batches(self.context)
        results = list(validation.results)
        _raise_on_gx_errors(suite.name, results)
        return results

    def finish(self) -> Path | None:
        """Store this run's suites, build its Data Docs pages and the index; the index."""
        with self._store_locked():
            for suite in self._suites.values():
                shared = copy.deepcopy(suite)  # a copy belongs to no context
                shared.id = None
                self._shared.suites.add_or_update(shared)
            return _build_docs(self._shared, self._built)


def _escaped(validation: Any) -> Any:
    """A copy of ``validation`` whose input-derived strings are HTML-escaped.

    GX writes unexpected values, index values, observed values and exception messages into
    the Data Docs HTML as they are; each can hold an input id or value such as
    ``<script>...``. The shared store (and so every page built from it) only ever gets
    this copy; the caller keeps the raw results, which map flagged rows back to the data.
    """
    from expectations.escaping import html_safe

    safe = copy.deepcopy(validation)
    for result in safe.results:
        result.result = html_safe(result.result or {})
        result.exception_info = html_safe(result.exception_info or {})
        result.meta = html_safe(result.meta or {})
        config = result.expectation_config
        if config is not None:
            config.meta = html_safe(config.meta or {})
    safe.meta = html_safe(safe.meta or {})
    return safe


def _forget_batches(context: Any) -> None:
    """Drop the frames GX keeps after validating them. The context outlives the call (GX
    holds the latest one), and the pandas engine of its data source keeps every batch's
    data (``reset_batch_cache`` forgets the batches but not their data): without this the
    whole validated table stays in memory for the rest of the run."""
    for source in context.data_sources.all().values():
        manager = getattr(getattr(source, "_execution_engine", None), "batch_manager", None)
        if manager is not None:
            manager.reset_batch_cache()
            getattr(manager, "_batch_data_cache", {}).clear()


def _quiet(context: Any) -> None:
    """No usage statistics, no progress bars; saved once into the context's config."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    bars = context.variables.progress_bars
    if context.variables.analytics_enabled is False and bars is not None and not bars["globally"]:
        return
    context.variables.analytics_enabled = False
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    context.variables.save()


def _ephemeral_config() -> Any:
    """In-memory stores, no docs site of its own (the shared one is built), quiet."""
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    return DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )


def _build_docs(context: Any, built: list[Any]) -> Path | None:
    """Build each Data Docs site (only ``built``'s pages, and the index: rebuilding every
    stored result grows nightly), then make a local site read offline
    (``expectations.docs_site``); the local site's index, or None."""
    from expectations import docs_site

    index = None
    for name, config in (context.variables.data_docs_sites or {}).items():
        # what build_data_docs does per site, keeping the index links it returns
        builder = context._init_site_builder_for_data_docs_site_creation(
            site_name=name, site_config=config
        )
        site_url, links = builder.build(resource_identifiers=built)
        url = urlparse(site_url or "")
        if url.scheme == "file" and links is not None:
            path = docs_site.publish(Path(url2pathname(url.path)).parent, links)
            index = index or path
    return index


def _raise_on_gx_errors(table: str, results: list) -> None:
    for r in results:
        info = r.exception_info or {}
        # One flat dict, or one per metric when a metric failed to resolve.
        infos = [info] if "raised_exception" in info else list(info.values())
        messages = [i.get("exception_message") for i in infos if i.get("raised_exception")]
        if messages:
            cfg = r.expectation_config
            raise ColumnTypeError(
                f"{table}: GX could not evaluate {cfg.type} on column "
                f"{cfg.kwargs.get('column')!r}: {messages[0]}; check that column's dtype in ingest"
            )


def flagged_rows(result: Any) -> list[int]:
    """Row numbers a column-map expectation flagged; the COMPLETE list or an error."""
    flagged = result.result.get("unexpected_index_list") or []
    expected = int(result.result.get("unexpected_count") or 0)
    if len(flagged) != expected:
        raise RuntimeError(
            f"GX listed {len(flagged)} of {expected} unexpected rows for "
            f"{result.expectation_config.type}; expected the COMPLETE list"
        )
    return [int(item[ROW_COLUMN]) for item in flagged]


def summary(result: Any) -> dict:
    """One expectation's outcome; a check flagged before GX ran (``meta["source"]``) is
    reported as the rule it stands for."""
    cfg = result.expectation_config
    meta = cfg.meta or {}
    observed = result.result.get("observed_value")
    source = meta.get("source") or {"expectation": cfg.type, "column": cfg.kwargs.get("column")}
    return {
        "expectation": source["expectation"],
        "column": source["column"],
        "level": meta.get("level"),
        "success": bool(result.success),
        "unexpected_count": int(result.result.get("unexpected_count") or 0),
        "observed_value": observed.isoformat() if isinstance(observed, pd.Timestamp) else observed,
        "reason": meta.get("reason"),
    }
