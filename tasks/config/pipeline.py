"""The whole pipeline's config: one section per stage, composed into one.

``PipelineConfig(...)`` built directly reads no file and no environment; the sources
``tasks.config.loader.load_config`` layers under the given values reach it through
``LOADED_SOURCES`` for the duration of that call.
"""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from tasks.config.content import ContentConfig
from tasks.config.inputs import IngestConfig, ValidateConfig
from tasks.config.learning import EvaluateConfig, FeatureConfig, TrackingConfig, TrainConfig
from tasks.config.operations import (
    CacheConfig,
    LockConfig,
    RefreshConfig,
    RunnerConfig,
    ScheduleConfig,
)
from tasks.config.outputs import MonitorConfig, PublishConfig, ScoreConfig

DEFAULT_WORKSPACE = "recpipe-home"
ENV_PREFIX = "RECPIPE__"
ENV_DELIMITER = "__"

# The sources load_config layers under the init kwargs: the environment, then the TOML file.
LOADED_SOURCES: ContextVar[tuple[PydanticBaseSettingsSource, ...]] = ContextVar(
    "recpipe_config_sources", default=()
)


class PipelineConfig(BaseSettings):
    """The whole pipeline's settings, one section per stage.

    ``load_config`` builds it from defaults, a TOML file, ``RECPIPE__*`` environment
    variables and overrides. Built directly (``PipelineConfig(...)``) or validated from a
    dict (a Prefect flow parameter, a pinned deployment), it takes the given values and the
    defaults only: it reads no file and no environment.
    """

    model_config = SettingsConfigDict(
        extra="forbid",
        populate_by_name=True,
        case_sensitive=False,
        env_prefix=ENV_PREFIX,
        env_prefix_target="all",  # the prefix applies to aliased fields too ("validate")
        env_nested_delimiter=ENV_DELIMITER,
    )

    workspace: Path = Path(DEFAULT_WORKSPACE)
    ingest: IngestConfig = IngestConfig()
    validate_: ValidateConfig = Field(ValidateConfig(), alias="validate")
    content: ContentConfig = ContentConfig()
    features: FeatureConfig = FeatureConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    tracking: TrackingConfig = TrackingConfig()
    score: ScoreConfig = ScoreConfig()
    publish: PublishConfig = PublishConfig()
    monitor: MonitorConfig = MonitorConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    refresh: RefreshConfig = RefreshConfig()
    cache: CacheConfig = CacheConfig()
    lock: LockConfig = LockConfig()
    runner: RunnerConfig = RunnerConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Highest priority first: init kwargs (the CLI overrides), then what load_config
        # set up for this call (environment, TOML file); nothing outside load_config.
        return (init_settings, *LOADED_SOURCES.get())
