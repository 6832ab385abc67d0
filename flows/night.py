"""One night's run context and the wiring of each stage (flows/nightly.py reads as the
list of these steps; flows/backtest.py runs the same ones).

A :class:`Night` holds what every stage needs (workspace, run date, run id, logger, the
MLflow parent run, the stage clock and skip cache) and collects the run summary in
``out``. Each method calls one stage's function(s) in ``tasks/`` through ``step``
(flows/steps.py): directly in this process, or as Prefect tasks in the nightly flow. A
stage hands the next a typed result (``IngestResult``, ``ValidateResult``, ...); the
summary keeps each as a plain dict.

What the project does itself rather than through Prefect, and why:

* **locks** (flows/night_run.py, tasks/storage/locks.py): a flock per run date survives
  ``kill -9`` and needs no server;
* **the skip cache** (tasks/storage/cache.py, keys in flows/stage_keys.py): stages read
  and write files, so their inputs are fingerprints of files and config; the markers also
  check that the outputs are still there, and paths in them are relative to the
  workspace. Prefect's input caching keys on task parameters and would have to persist
  results that are folders;
* **stage timing** (flows/measure.py): a stage is several task runs, and the summary
  needs peak memory, which Prefect does not record. Retries stay Prefect's (on the I/O
  tasks: ingest, promote, publish).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import date
from typing import TYPE_CHECKING, Any

from flows import night_run
from flows.night_models import ModelStages
from flows.night_output import OutputStages
from flows.steps import Direct, Step
from tasks.config import PipelineConfig

if TYPE_CHECKING:
    from tasks.config import FeatureConfig
    from tasks.features import FeaturesResult
    from tasks.ingest import IngestResult
    from tasks.validate import ValidateResult

LANDING_LOCK_WAIT_SECONDS = 600


class Night(ModelStages, OutputStages):
    """One night (see the module docstring): its context (flows/night_context.py),
    opening and closing (flows/night_run.py), the data stages (here), the model stages
    (flows/night_models.py) and the output stages (flows/night_output.py)."""

    # -- opening and closing (flows/night_run.py) --------------------------------------
    @classmethod
    def open(
        cls,
        config: PipelineConfig,
        run_date: date,
        as_of: bool,
        run_id: str,
        logger: logging.Logger | logging.LoggerAdapter,
        step: Step | None = None,
    ) -> Night:
        """The context and the MLflow parent run (created first, so any failure is
        recorded). ``step``: how stages run (default: called in this process)."""
        from tasks.data.as_of import check_source
        from tasks.storage.cache import StageCache
        from tasks.storage.workspace import Workspace

        if as_of:
            check_source(config.ingest.source)
        ws = Workspace.at(config.workspace)
        night = cls(config, run_date, as_of, run_id, ws, logger, step or Direct())
        night.cache = StageCache(ws.stage_markers, run_date, config.cache.enabled, run_id, logger)
        logger.info("recpipe nightly for %s in workspace %s", run_date, ws.root)
        night_run.open_parent_run(night)
        night.out = night_run.first_summary(night)
        return night

    def locks(self) -> Any:
        """The date's locks from ingest to publish."""
        return night_run.date_locks(self)

    def recover(self) -> list[dict]:
        """Finish or undo what a killed run left half-published, before anything else."""
        return night_run.recover(self)

    @contextmanager
    def running(self) -> Iterator[Night]:
        """The night's stages run inside: COMPLETED when they all return, the failure
        recorded when one raises (and raised again); the night closed either way."""
        try:
            yield self
            self.out["status"] = "COMPLETED"
        except BaseException as exc:
            night_run.record_failure(self, exc)
            raise
        finally:
            night_run.close(self)

    # -- the stages --------------------------------------------------------------------
    def ingest(self) -> IngestResult:
        from flows.stage_keys import ingest_parts
        from tasks.ingest import IngestResult

        parts = ingest_parts(self.config.ingest, self.run_date, self.as_of, self.ws.root)
        parts["content"] = self.config.content.model_dump(mode="json")
        outputs = [self.ws.raw(self.run_date)]
        result = self._cached("ingest", parts, outputs, self._ingest_now, IngestResult)
        self.out["ingest"] = result.summary()
        self.timed = result.timed
        return result

    def _ingest_now(self) -> IngestResult:
        from tasks.data.as_of import as_of
        from tasks.ingest import ingest

        with self._landing_lock():
            result = self.step(
                ingest,
                config=self.config.ingest,
                run_date=self.run_date,
                raw_dir=str(self.ws.raw(self.run_date)),
                workspace_root=str(self.ws.root),
                content=self.config.content,
            )
        if self.as_of:
            counts = self.step(
                as_of, interactions_path=result.interactions_path, run_date=self.run_date
            )
            result = result.model_copy(update={"as_of": counts})
        return result

    @contextmanager
    def _landing_lock(self) -> Iterator[None]:
        """The landing store is shared by all dates: one landing ingest at a time."""
        from tasks.storage.locks import file_lock

        with ExitStack() as held:
            if self.config.ingest.source == "landing":
                wait = max(self.config.lock.wait_seconds, LANDING_LOCK_WAIT_SECONDS)
                lock = self.ws.locks / "landing-ingest.lock"
                held.enter_context(file_lock(lock, wait, self.holder, "a landing-folder ingest"))
            yield

    def validate(self, ingest: IngestResult) -> ValidateResult:
        from flows.stage_keys import validate_parts
        from tasks.data.as_of import cutoff
        from tasks.forget.ledger import screen_events
        from tasks.validate import ValidateResult, validate

        out_dir = self.ws.validated(self.run_date)
        # forgotten users' rows leave the raw tables before validation (the erasure ledger)
        erased = screen_events(self.ws.root, [ingest.interactions_path, ingest.users_path])
        # "now" for the checks (future, too old, stale) is the end of the run date, never
        # the machine's clock: a run of a date checks the same whenever it runs
        now_iso = cutoff(self.run_date).isoformat()
        config, gx_root = self.config.validate_, self.ws.validation_root
        parts = validate_parts(ingest, config, out_dir, gx_root, ingest.incremental, now_iso)
        parts["content"] = self._content_key(ingest.items_path, ingest.content_path)
        result = self._cached(
            "validate",
            parts,
            [out_dir],
            lambda: self.step(
                validate,
                raw_path=ingest.interactions_path,
                out_dir=str(out_dir),
                gx_root=str(gx_root),
                config=config,
                now_iso=now_iso,
                items_path=ingest.items_path,
                users_path=ingest.users_path,
                edges_path=ingest.edges_path,
                edges_direction=ingest.edges_direction or "mutual",
                accumulate=ingest.incremental,
                content_path=ingest.content_path,
                content=self.config.content,
            ),
            ValidateResult,
        )
        self.content = result.content_path
        if result.edges_path is not None:
            self.edges = (result.edges_path, ingest.edges_direction or "mutual")
        if erased:  # forgotten users' rows: counted, never quarantined with their id
            accounting = f"{erased} rows of forgotten users dropped | {result.accounting}"
            result = result.model_copy(
                update={"erased_rows_dropped": erased, "accounting": accounting}
            )
        self.out["validation"] = result.summary()
        return result

    def features(self) -> FeaturesResult:
        from flows.stage_keys import features_parts
        from tasks import tracking
        from tasks.data.holdout import with_evidence
        from tasks.features import FeaturesResult
        from tasks.storage.cache import tree_digest

        out_dir = self.ws.features(self.run_date)
        config = with_evidence(self.config.features, self.config.evaluate)
        if not self.timed:
            config = self._untimed(config)
        parts = features_parts(self.validated_path, config)
        if self.edges is not None:  # the graph is written beside the features
            parts["edges"] = [tree_digest(self.edges[0]), self.edges[1]]
        if self.content is not None:  # the item content is written beside the features
            parts["content"] = self._content_key(self.validated_items_path, self.content)
        result = self._cached(
            "features",
            parts,
            [out_dir],
            lambda: self._features_now(str(out_dir), config),
            FeaturesResult,
        )
        self.data_tags = {
            "data.fingerprint": tracking.fingerprint(result.features_dir),
            "data.n_train": str(result.n_train),
            "data.n_valid": str(result.n_valid),
            "data.first_event": result.first_event,
            "data.last_event": result.last_event,
            "run_date": self.run_date.isoformat(),
            "prefect.flow_run_id": self.run_id,
        }
        for tag, value in self.data_tags.items():
            self.client.set_tag(self.parent_run_id, tag, value)
        if result.holdout:  # what was held out and why (tasks/data/holdout.py)
            description = result.holdout["description"][:5000]
            self.client.set_tag(self.parent_run_id, "data.holdout", description)
        self.out["features"] = result.summary()
        return result

    def _features_now(self, out_dir: str, config: FeatureConfig) -> FeaturesResult:
        from flows.steps import features_in_partitions
        from tasks.data.content_features import write_content_features
        from tasks.data.social import write_social_graph

        result = features_in_partitions(self.step, self.validated_path, out_dir, config)
        if self.content is not None:
            content = self.step(
                write_content_features,
                items_path=self.validated_items_path,
                schema_path=self.content,
                features_dir=out_dir,
                config=self.config.content,
                run_date=self.run_date,
            )
            self.logger.info("item content: %s", content["modalities"])
            result = result.model_copy(update={"content": content})
        if self.edges is None:
            return result
        path, direction = self.edges
        social = self.step(
            write_social_graph, edges_path=path, features_dir=out_dir, direction=direction
        )
        self.logger.info("social graph: %s", social)
        return result.model_copy(update={"social": social})

    def _content_key(self, items_path: str | None, schema_path: str | None) -> dict:
        """What the item content depends on: the [content] section, the schema, the items
        and their image files' bytes (tasks/data/content.py)."""
        from tasks.data.content import content_digest

        return {
            "config": self.config.content.model_dump(mode="json"),
            "digest": content_digest(items_path, schema_path),
        }

    def _untimed(self, config: FeatureConfig) -> FeatureConfig:
        """A night without timestamps: one line on what it does, and a random hold-out."""
        if config.holdout not in ("random",):
            config = config.model_copy(update={"holdout": "random"})
        line = (
            "no timestamps in the source: each event is stamped with its ingest date; the "
            f"hold-out is a random {config.latest_share:.0%} of each user's events (not "
            "the latest); a refresh stamps the events it reads with the day they arrive"
        )
        self.logger.info(line)
        self.out["without_time"] = line
        return config
