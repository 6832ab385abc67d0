"""What every stage of a night needs: the config, the run date, the run id and logger,
the step that runs stage functions (flows/steps.py), the workspace, the MLflow parent
run, the stage clock and skip cache, and the run summary ``out`` (flows/night.py wires
the stages on it)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flows.measure import StageClock
from flows.steps import Direct, Step
from tasks.config import PipelineConfig

if TYPE_CHECKING:
    from tasks.storage.cache import StageCache
    from tasks.storage.workspace import Workspace


@dataclass
class NightContext:
    """The run context of one night (see the module docstring)."""

    config: PipelineConfig
    run_date: date
    as_of: bool
    run_id: str
    ws: Workspace
    logger: logging.Logger | logging.LoggerAdapter
    step: Step = field(default_factory=Direct)
    cache: StageCache | None = None
    client: Any = None  # MLflow client
    experiment_id: str = ""
    parent_run_id: str = ""
    data_tags: dict[str, str] = field(default_factory=dict)
    clock: StageClock = field(default_factory=StageClock)
    started: float = field(default_factory=time.perf_counter)
    out: dict[str, Any] = field(default_factory=dict)
    _score_parts: dict[str, Any] = field(default_factory=dict)
    timed: bool = True  # the source's events carry a time (else stamped at ingest)
    edges: tuple[str, str] | None = None  # the validated relations between users, direction
    content: str | None = None  # the validated catalogue's content schema, when it has content

    @property
    def database_url(self) -> str:
        return self.config.publish.url(self.ws.database_url)

    @property
    def holder(self) -> dict:
        from tasks.storage.locks import holder_info

        return holder_info(
            self.run_id, run_date=self.run_date.isoformat(), workspace=str(self.ws.root)
        )

    @property
    def stage_cache(self) -> StageCache:
        """``cache``, which ``Night.open`` sets; a clear error for a context without it."""
        if self.cache is None:
            raise RuntimeError("the night has no stage cache: open it with Night.open")
        return self.cache

    @property
    def validated_path(self) -> str:
        return str(self.ws.validated(self.run_date) / "interactions.parquet")

    @property
    def validated_items_path(self) -> str:
        return str(self.ws.validated(self.run_date) / "items.parquet")

    @property
    def _positive(self) -> tuple[str, float]:
        """Which events count as positive (``features.positive``): reasons name only those."""
        features = self.config.features
        return (features.positive, features.positive_min_value)

    # -- helpers -------------------------------------------------------------------------
    def _timed(self, stage: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        """``fn`` through the step, timed as ``stage``."""
        return self.clock.run(stage, self.step, fn, **kwargs)

    def _cached(
        self,
        stage: str,
        parts: dict,
        outputs: list[Path],
        run: Callable[[], Any],
        result_type: type | None = None,
    ) -> Any:
        return self.clock.run(
            stage, self.stage_cache.run, stage, parts, outputs, run, result_type=result_type
        )
