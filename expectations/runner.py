"""Run suites through checkpoints on one GX file context, then build the Data Docs once.

The file context lives under ``<gx_root>/gx``: suites, validation definitions,
checkpoints, every validation result and the Data Docs site. Each frame gets a
``__row__`` column so GX's unexpected indices map back to rows.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import pandas as pd

from expectations.common import ROW_COLUMN
from tasks.errors import DataError

DATASOURCE_NAME = "recpipe"
BATCH_DEFINITION_NAME = "whole_dataframe"


def run_suites(
    gx_root: Path, batches: list[tuple[Any, pd.DataFrame]]
) -> tuple[dict[str, list], Path | None]:
    """Validate each ``(suite, frame)``; return ``{suite name: results}`` and the docs index."""
    runner = SuiteRunner(gx_root)
    out = {suite.name: runner.run(suite, frame) for suite, frame in batches}
    return out, runner.finish()


class SuiteRunner:
    """One GX file context for several validations, then one Data Docs build.

    ``run`` may be called more than once with the same suite (one user partition of a
    large batch after another): each call stores its own validation result, and no frame
    is kept once its results are returned.
    """

    def __init__(self, gx_root: Path) -> None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        import great_expectations as gx

        gx_root.mkdir(parents=True, exist_ok=True)
        self._gx = gx
        self.context = gx.get_context(mode="file", project_root_dir=gx_root)
        _quiet(self.context)
        # add_or_update_pandas resets the data source (assets included), so assets and
        # batch definitions are added fresh every run; the rest is add_or_update by name.
        self._source = self.context.data_sources.add_or_update_pandas(name=DATASOURCE_NAME)
        self._checkpoints: dict[str, Any] = {}
        self._built: list[Any] = []

    def _checkpoint(self, suite: Any) -> Any:
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
                result_format={
                    "result_format": "COMPLETE",
                    "unexpected_index_column_names": [ROW_COLUMN],
                },
            )
        )
        self._built.append(ExpectationSuiteIdentifier(name=suite.name))
        self._checkpoints[suite.name] = checkpoint
        return checkpoint

    def run(self, suite: Any, frame: pd.DataFrame) -> list:
        """Validate ``frame`` against ``suite``; the results, GX errors raised as DataError."""
        run = self._checkpoint(suite).run(batch_parameters={"dataframe": frame})
        ((identifier, validation),) = run.run_results.items()
        self._built.append(identifier)
        _forget_batches(self.context)
        results = list(validation.results)
        _raise_on_gx_errors(suite.name, results)
        return results

    def finish(self) -> Path | None:
        """Build this run's Data Docs pages; the docs index."""
        # Only this run's pages and the index: rebuilding every stored result grows nightly.
        self.context.build_data_docs(resource_identifiers=self._built)
        return _docs_index(self.context)


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


def _docs_index(context: Any) -> Path | None:
    for site in context.get_docs_sites_urls():
        url = urlparse(site.get("site_url") or "")
        if url.scheme == "file":
            return Path(url2pathname(url.path))
    return None


def _raise_on_gx_errors(table: str, results: list) -> None:
    for r in results:
        info = r.exception_info or {}
        # One flat dict, or one per metric when a metric failed to resolve.
        infos = [info] if "raised_exception" in info else list(info.values())
        messages = [i.get("exception_message") for i in infos if i.get("raised_exception")]
        if messages:
            cfg = r.expectation_config
            raise DataError(
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
    cfg = result.expectation_config
    meta = cfg.meta or {}
    observed = result.result.get("observed_value")
    return {
        "expectation": cfg.type,
        "column": cfg.kwargs.get("column"),
        "level": meta.get("level"),
        "success": bool(result.success),
        "unexpected_count": int(result.result.get("unexpected_count") or 0),
        "observed_value": observed.isoformat() if isinstance(observed, pd.Timestamp) else observed,
        "reason": meta.get("reason"),
    }
