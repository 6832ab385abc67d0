"""Typed pipeline configuration: one pydantic model per stage, composed into one.

Precedence, lowest to highest: defaults < TOML file < ``RECPIPE__SECTION__FIELD``
environment variables < explicit overrides (CLI options). ``RECPIPE_WORKSPACE``
sets the workspace folder. ``load_config`` layers these sources with pydantic-settings
(:mod:`tasks.config.loader`); ``PipelineConfig(...)`` built directly reads no file and
no environment.

The sections, by concern: where the data comes from and what it must satisfy
(:mod:`tasks.config.inputs`; the item catalogue's content, :mod:`tasks.config.content`),
features, models, evaluation and tracking
(:mod:`tasks.config.learning`; each model's section is its settings class in
``models/``), what is published (:mod:`tasks.config.outputs`) and how runs are
operated (:mod:`tasks.config.operations`).
"""

from __future__ import annotations

from tasks.config.content import ContentConfig, CoordinateColumns
from tasks.config.inputs import (
    DemoConfig,
    FilesConfig,
    IngestConfig,
    MovieLensConfig,
    SocialConfig,
    ValidateConfig,
)
from tasks.config.learning import (
    EvaluateConfig,
    FeatureConfig,
    ModelName,
    TrackingConfig,
    TrainConfig,
)
from tasks.config.loader import ENV_WORKSPACE, dump_with_secrets, load_config
from tasks.config.operations import (
    CacheConfig,
    LockConfig,
    RefreshConfig,
    RunnerConfig,
    ScheduleConfig,
)
from tasks.config.outputs import MonitorConfig, PublishConfig, ScoreConfig
from tasks.config.pipeline import (
    DEFAULT_WORKSPACE,
    ENV_DELIMITER,
    ENV_PREFIX,
    PipelineConfig,
)

__all__ = [
    "DEFAULT_WORKSPACE",
    "ENV_DELIMITER",
    "ENV_PREFIX",
    "ENV_WORKSPACE",
    "CacheConfig",
    "ContentConfig",
    "CoordinateColumns",
    "DemoConfig",
    "EvaluateConfig",
    "FeatureConfig",
    "FilesConfig",
    "IngestConfig",
    "LockConfig",
    "ModelName",
    "MonitorConfig",
    "MovieLensConfig",
    "PipelineConfig",
    "PublishConfig",
    "RefreshConfig",
    "RunnerConfig",
    "ScheduleConfig",
    "ScoreConfig",
    "SocialConfig",
    "TrackingConfig",
    "TrainConfig",
    "ValidateConfig",
    "dump_with_secrets",
    "load_config",
]
