"""Typed pipeline configuration: one pydantic model per stage, composed into one.

Precedence, lowest to highest: defaults < TOML file < ``RECPIPE__SECTION__FIELD``
environment variables < explicit overrides (CLI options). ``RECPIPE_WORKSPACE``
sets the workspace folder. ``load_config`` layers these sources with pydantic-settings;
``PipelineConfig(...)`` built directly reads no file and no environment.
"""

from __future__ import annotations

import codecs
import json
import math
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretBytes,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from tasks.errors import ConfigError

DEFAULT_WORKSPACE = "recpipe-home"
ENV_WORKSPACE = "RECPIPE_WORKSPACE"
ENV_PREFIX = "RECPIPE__"
ENV_DELIMITER = "__"


def _split_list(value: Any) -> Any:
    """A list from the environment: JSON (``["a", "b"]``) or comma-separated (``a,b``)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(
                'expected a JSON list such as ["a", "b"] or comma-separated values such as a,b '
                f"({exc.msg})"
            ) from exc
    return [part.strip() for part in text.split(",") if part.strip()]


_T = TypeVar("_T")
# NoDecode: pydantic-settings hands the raw string to _split_list instead of insisting on JSON.
EnvList = Annotated[list[_T], NoDecode, BeforeValidator(_split_list)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DemoConfig(_Section):
    """Size and shape of the synthetic demo dataset."""

    n_users: int = Field(2000, ge=10)
    n_items: int = Field(1000, ge=20)
    n_genres: int = Field(10, ge=2, le=18)
    mean_interactions: float = Field(40.0, gt=1)
    weeks: int = Field(8, ge=2)
    seed: int = 42


class MovieLensConfig(_Section):
    """Where a MovieLens dataset comes from and how its archive is checked.

    ``path`` (a local ``.zip`` or its extracted folder) wins over downloading. Downloads
    come from ``base_url`` and are cached under ``cache_dir`` (default
    ``<workspace>/cache/movielens``). An archive is checked against ``sha256`` when given,
    else against the checksums recorded in ``tasks/sources/movielens.py``; a download with
    no known checksum is refused unless ``verify`` is false.
    """

    path: Path | None = None
    base_url: str = "https://files.grouplens.org/datasets/movielens"
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    verify: bool = True
    cache_dir: Path | None = None
    timeout_seconds: float = Field(120.0, gt=0)


class FilesConfig(_Section):
    """The user's own CSV/Parquet files (source "files") or daily drops (source "landing").

    Column names map the file's columns onto the contract. ``value_col`` and
    ``event_type_col`` left unset take a column named ``value`` / ``event_type`` when the
    file has one; set explicitly, the column must exist. ``delimiter`` unset: a tab for
    ``.tsv`` files, a comma for the rest. ``items_path``: an optional item catalog file.
    """

    path: Path | None = None
    user_col: str = Field("user_id", min_length=1)
    item_col: str = Field("item_id", min_length=1)
    timestamp_col: str = Field("timestamp", min_length=1)
    value_col: str | None = None
    event_type_col: str | None = None
    timestamp_unit: Literal["auto", "s", "ms", "iso", "mixed"] = "auto"
    delimiter: str | None = Field(None, min_length=1, max_length=1)
    encoding: str = "utf-8"
    items_path: Path | None = None

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError as exc:
            raise ValueError(
                f"unknown text encoding; use e.g. 'utf-8' or 'latin-1' ({exc})"
            ) from exc
        return value


class IngestConfig(_Section):
    source: Literal[
        "demo",
        "movielens-100k",
        "movielens-1m",
        "movielens-20m",
        "movielens-latest-small",
        "files",
        "landing",
    ] = "demo"
    demo: DemoConfig = DemoConfig()
    movielens: MovieLensConfig = MovieLensConfig()
    files: FilesConfig = FilesConfig()


class ValidateConfig(_Section):
    """Thresholds for the interactions, items and users suites.

    ``None`` switches a check off: ``max_event_age_days`` (stale data) is off by default
    because the demo and MovieLens sources are historical; set it for live data.
    ``part_rows``: a batch of more interactions than this is validated in user partitions
    of about this many rows (tasks/validation/partitions.py), so memory follows the
    partition, not the batch.
    """

    value_min: float = 0.0
    value_max: float = 5.0
    min_timestamp: str = "1995-01-01T00:00:00Z"
    future_tolerance_hours: float = Field(24.0, ge=0)
    min_rows: int = Field(1, ge=1)
    max_quarantine_share: float = Field(0.05, ge=0, le=1)
    max_id_length: int = Field(256, ge=1)
    max_events_per_user: int | None = Field(20_000, ge=1)
    max_event_age_days: float | None = Field(None, gt=0)
    max_volume_drop: float | None = Field(0.5, ge=0, le=1)
    volume_window: int = Field(7, ge=1)
    volume_min_runs: int = Field(3, ge=1)
    item_year_min: int = 1870
    part_rows: int = Field(2_000_000, ge=1)


class FeatureConfig(_Section):
    """The split between training and the hold-out that decides promotion, sized by evidence.

    ``holdout = "auto"`` (default) holds out the last ``validation_days`` of data and widens
    the window back in time (doubling, up to ``max_validation_days`` and while the hold-out
    keeps at most ``max_holdout_share`` of the events) until it holds at least
    ``min_users`` users with history before it and ``min_events`` events of theirs; when no
    window does, it holds out each active user's latest events instead (the last
    ``latest_share`` of the events of every user with at least ``latest_min_events``
    events and one in the last ``max_validation_days``). ``"window"`` and ``"latest"``
    use one way only; ``"returning"`` (opt-in) holds out each user's events since their
    last return after at least ``return_gap_days`` away (returns within the last
    ``max_validation_days``): users coming back, as the next days' users do. ``min_users`` and ``min_events`` default to the evaluate section's
    (the gate's minimum of evidence). What was chosen and why is logged and kept in the
    snapshot's ``meta.json``.

    ``positive``: which events count as positive feedback in training, in the hold-out
    and in reasons (tasks/data/positives.py): ``auto`` takes a rated event (event type
    "rating") as positive when its value is at least ``positive_min_value`` and every
    other event as positive (unrated data as before); ``min_value`` judges every event
    with a value, ``user_mean`` against the user's mean value, ``all`` takes every event.
    Events that are not positive still count as seen: never recommended back.

    ``part_rows``: features are built in user partitions of about this many
    interactions (tasks/features.py), one task each, on Dask workers when the flow
    runs on a Dask task runner.
    """

    validation_days: int = Field(7, ge=1)
    holdout: Literal["auto", "window", "latest", "returning"] = "auto"
    return_gap_days: float = Field(1.0, gt=0)
    max_validation_days: int = Field(365, ge=1)
    max_holdout_share: float = Field(0.3, gt=0, lt=1)
    latest_share: float = Field(0.2, gt=0, lt=1)
    latest_min_events: int = Field(3, ge=2)
    min_users: int | None = Field(None, ge=1)
    min_events: int | None = Field(None, ge=1)
    positive: Literal["auto", "min_value", "user_mean", "all"] = "auto"
    positive_min_value: float = 4.0
    min_train_interactions: int = Field(1, ge=1)
    part_rows: int = Field(1_000_000, ge=1)


class PopularityConfig(_Section):
    pass


class ItemKNNConfig(_Section):
    """Item-kNN: cosine item-item similarity with shrinkage; each item scored from its
    ``neighbors`` most similar items."""

    neighbors: int = Field(200, ge=1)
    shrinkage: float = Field(10.0, ge=0)


class EASEConfig(_Section):
    """EASE (Steck 2019): closed-form item-item model, L2 regularisation."""

    l2: float = Field(500.0, gt=0)


class ALSConfig(_Section):
    """Implicit-feedback ALS (Hu et al. 2008) through the ``implicit`` library."""

    factors: int = Field(32, ge=1)
    regularization: float = Field(20.0, ge=0)
    alpha: float = Field(2.0, gt=0)
    iterations: int = Field(15, ge=1)
    seed: int = 42
    num_threads: int = Field(0, ge=0)


class BPRConfig(_Section):
    """Bayesian Personalised Ranking (Rendle et al. 2009) through the ``implicit`` library;
    one thread repeats exactly, more are faster but not bit-for-bit repeatable."""

    factors: int = Field(64, ge=1)
    learning_rate: float = Field(0.005, gt=0)
    regularization: float = Field(0.001, ge=0)
    iterations: int = Field(100, ge=1)
    # implicit samples negatives by popularity: add this times log(1 + item count) back
    popularity_correction: float = Field(0.0, ge=0)
    seed: int = 42
    num_threads: int = Field(1, ge=0)


class _KerasConfig(_Section):
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(128, ge=8)
    learning_rate: float = Field(1e-3, gt=0)
    seed: int = 42
    patience: int = Field(3, ge=1)


class MultDAEConfig(_KerasConfig):
    """Mult-DAE (Liang et al., 2018): one hidden layer, multinomial likelihood."""

    hidden_dim: int = Field(200, ge=8)
    dropout: float = Field(0.5, ge=0, lt=1)
    l2: float = Field(1e-5, ge=0)
    # halve the learning rate after this many epochs without a better early-stopping NDCG
    lr_plateau: int = Field(0, ge=0)


class EASEMultDAEConfig(_Section):
    """EASE + Mult-DAE hybrid: standardised scores blended, the weight chosen on the
    early-stopping target among ``weights`` (``default_weight`` without one)."""

    ease: EASEConfig = EASEConfig(l2=300.0)
    mult_dae: MultDAEConfig = MultDAEConfig(
        hidden_dim=600,
        dropout=0.5,
        l2=1e-2,
        batch_size=500,
        learning_rate=3e-3,
        epochs=600,
        patience=20,
    )
    weights: EnvList[float] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    default_weight: float = Field(0.5, ge=0, le=1)
    seed: int = 42


class MultVAEConfig(_KerasConfig):
    """Mult-VAE (Liang et al., 2018): KL annealing up to ``anneal_cap``."""

    hidden_dim: int = Field(600, ge=8)
    latent_dim: int = Field(200, ge=2)
    dropout: float = Field(0.5, ge=0, lt=1)
    l2: float = Field(0.0, ge=0)
    anneal_cap: float = Field(0.2, ge=0, le=1)
    total_anneal_steps: int = Field(20000, ge=1)
    noise_std: float = Field(1.0, ge=0)
    epochs: int = Field(50, ge=1)
    patience: int = Field(5, ge=1)


class RecVAEConfig(_KerasConfig):
    """RecVAE (Shenbin et al., 2020): composite prior, KL weight ``gamma`` per interaction,
    ``encoder_epochs`` encoder passes then ``decoder_epochs`` decoder passes per epoch."""

    hidden_dim: int = Field(600, ge=8)
    latent_dim: int = Field(200, ge=2)
    n_layers: int = Field(5, ge=1)
    dropout: float = Field(0.5, ge=0, lt=1)
    gamma: float = Field(0.005, ge=0)
    encoder_epochs: int = Field(3, ge=1)
    decoder_epochs: int = Field(1, ge=1)
    epochs: int = Field(50, ge=1)
    batch_size: int = Field(500, ge=8)
    learning_rate: float = Field(5e-4, gt=0)
    patience: int = Field(5, ge=1)


class GRU4RecConfig(_KerasConfig):
    """GRU4Rec-style next-item model over each user's time-ordered history."""

    cell: Literal["gru", "lstm"] = "gru"
    embedding_dim: int = Field(64, ge=4)
    hidden_dim: int = Field(128, ge=4)
    max_len: int = Field(50, ge=2)
    dropout: float = Field(0.2, ge=0, lt=1)
    batch_size: int = Field(64, ge=8)


class CaserConfig(_KerasConfig):
    """Caser (Tang & Wang 2018): horizontal and vertical convolutions over the last L items."""

    embedding_dim: int = Field(50, ge=4)
    max_len: int = Field(5, ge=2)
    n_h: int = Field(16, ge=1)
    n_v: int = Field(4, ge=1)
    dropout: float = Field(0.5, ge=0, lt=1)
    l2: float = Field(1e-6, ge=0)
    batch_size: int = Field(256, ge=8)


class SASRecConfig(_KerasConfig):
    """SASRec (Kang & McAuley 2018): causal self-attention over the last ``max_len`` items."""

    embedding_dim: int = Field(64, ge=4)
    max_len: int = Field(20, ge=2)
    n_blocks: int = Field(2, ge=1)
    n_heads: int = Field(1, ge=1)
    dropout: float = Field(0.3, ge=0, lt=1)
    tied: bool = True
    # windows end every ``stride`` items (None: consecutive windows of ``max_len``)
    stride: int | None = Field(5, ge=1)
    epochs: int = Field(60, ge=1)
    batch_size: int = Field(64, ge=8)
    patience: int = Field(8, ge=1)


class TwoTowerConfig(_KerasConfig):
    """User and item towers; the item tower reads content features when there are some."""

    embedding_dim: int = Field(64, ge=4)
    hidden_dims: EnvList[int] = [128]
    loss: Literal["softmax", "bpr"] = "softmax"
    temperature: float = Field(0.1, gt=0)
    logq_correction: bool = True
    id_dropout: float = Field(0.0, ge=0, lt=1)
    l2: float = Field(0.0, ge=0)
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(256, ge=8)


ModelName = Literal[
    "popularity",
    "item_knn",
    "ease",
    "ease_mult_dae",
    "als",
    "bpr",
    "mult_dae",
    "mult_vae",
    "recvae",
    "gru4rec",
    "caser",
    "sasrec",
    "two_tower",
]


class TrainConfig(_Section):
    """Which models the nightly run trains (the popularity baseline is always worth keeping:
    the promotion gate compares against it) and each model's settings.

    Keras models stop early on NDCG over the last ``early_stopping_days`` of the
    training period, carved out of training; the hold-out that decides promotion
    is never used for training or tuning.
    """

    models: EnvList[ModelName] = ["popularity", "ease", "mult_dae"]
    early_stopping_days: int = Field(7, ge=1)
    popularity: PopularityConfig = PopularityConfig()
    item_knn: ItemKNNConfig = ItemKNNConfig()
    ease: EASEConfig = EASEConfig()
    als: ALSConfig = ALSConfig()
    bpr: BPRConfig = BPRConfig()
    mult_dae: MultDAEConfig = MultDAEConfig()
    mult_vae: MultVAEConfig = MultVAEConfig()
    recvae: RecVAEConfig = RecVAEConfig()
    ease_mult_dae: EASEMultDAEConfig = EASEMultDAEConfig()
    gru4rec: GRU4RecConfig = GRU4RecConfig()
    caser: CaserConfig = CaserConfig()
    sasrec: SASRecConfig = SASRecConfig()
    two_tower: TwoTowerConfig = TwoTowerConfig()


class EvaluateConfig(_Section):
    """Hold-out metrics and the promotion gate (tasks/gate.py, tasks/promote.py).

    The gate decides only on at least ``min_users`` hold-out users and ``min_events``
    hold-out events (below that: ``kept: too little evidence``). A challenger is promoted
    when it beats popularity and the ``confidence`` interval of its mean per-user
    ``primary_metric`` minus the champion's (a paired bootstrap over users,
    ``bootstrap_resamples`` resamples, seeded by ``seed``) lies above
    ``-promotion_tolerance``. With ``refresh_same_model``, the champion's own model
    retrained tonight replaces it unless the interval lies wholly below
    ``-promotion_tolerance`` (a tie within noise goes to the fresher model).

    ``sample_half_width``: every model (and the champion re-scored) is evaluated on one
    seeded sample of the hold-out users, as many as make the ``confidence`` interval of a
    per-user mean at most this half-width whatever the metric's spread (a per-user figure
    lies in [0, 1], so its standard deviation is at most 0.5): 38,415 users at 0.005 and
    95%. All users when there are fewer; 0 evaluates every user.
    """

    k: int = Field(10, ge=1)
    primary_metric: Literal["ndcg", "recall"] = "ndcg"
    promotion_tolerance: float = Field(0.002, ge=0)
    min_users: int = Field(200, ge=1)
    min_events: int = Field(500, ge=1)
    bootstrap_resamples: int = Field(1000, ge=100)
    confidence: float = Field(0.95, gt=0.5, lt=1)
    seed: int = 0
    refresh_same_model: bool = True
    sample_half_width: float = Field(0.005, ge=0, lt=0.5)

    @property
    def sample_users(self) -> int | None:
        """Hold-out users evaluated at most (``sample_half_width``), None for all."""
        if not self.sample_half_width:
            return None
        from statistics import NormalDist

        z = NormalDist().inv_cdf(0.5 + self.confidence / 2)
        return math.ceil((z * 0.5 / self.sample_half_width) ** 2)


class TrackingConfig(_Section):
    experiment: str = "recpipe-nightly"
    registered_model: str = "recpipe-recommender"


class ScoreConfig(_Section):
    """Who is scored, with which business rules and fallbacks (see tasks/score.py).

    ``shard_rows``: users are scored in shards of about this many interactions
    (tasks/data/shards.py); memory follows the shard, not the number of users, and shards are
    the units a Dask task runner spreads over its workers. ``threads``: blocks of
    ``batch_users`` users scored at once within a shard (0: as many as the CPUs the process
    may use; on Dask, set it to the worker's threads' share).
    """

    k: int = Field(10, ge=1)
    batch_users: int = Field(1024, ge=1)
    threads: int = Field(0, ge=0)
    shard_rows: int = Field(1_000_000, ge=1)
    active_days: int | None = Field(None, ge=1)
    min_history: int = Field(1, ge=1)
    deny_items: EnvList[str] = []
    deny_list_path: Path | None = None
    respect_available: bool = True
    max_per_genre: int | None = Field(None, ge=1)
    popular_days: int = Field(30, ge=1)
    explain: bool = True
    similar_k: int = Field(10, ge=1)
    neighbours: int = Field(50, ge=1)
    shrinkage: float = Field(10.0, ge=0)


class PublishConfig(_Section):
    """Where the tables go: lake tables (Delta Lake) in the workspace and a database
    (SQLite by default). ``lake_retention_hours``: how long replaced lake versions stay
    readable (time travel, ``recpipe recs rollback``) before they are vacuumed.

    ``database_url`` is a secret: it is masked in every repr, dump, log, MLflow param and
    Prefect parameter. Its password can instead come from a file
    (``database_password_file``, first line) or an environment variable
    (``database_password_env`` names it), or from libpq's own ``PGPASSWORD`` /
    ``PGPASSFILE`` when the URL has none.
    """

    table: str = Field("recommendations", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    similar_table: str = Field("similar_items", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    database_url: SecretStr | None = None
    database_password_file: Path | None = None
    database_password_env: str | None = None
    keep_runs: int = Field(7, ge=1)
    validate_output: bool = True
    lake_retention_hours: float = Field(168.0, ge=0)

    def url(self, default: str) -> str:
        """The URL to connect with (``default``, the workspace's SQLite file, when none is
        set), with the password from the file or variable filled in."""
        if self.database_url is None:
            return default
        from sqlalchemy.engine import make_url

        url = make_url(self.database_url.get_secret_value())
        password = None
        if self.database_password_file is not None:
            try:
                lines = Path(self.database_password_file).expanduser().read_text().splitlines()
            except OSError as exc:
                raise ConfigError(
                    f"publish.database_password_file {self.database_password_file}: cannot be "
                    f"read ({exc.strerror}); expected a file whose first line is the password"
                ) from None
            password = lines[0] if lines else ""
        elif self.database_password_env:
            password = os.environ.get(self.database_password_env)
            if password is None:
                raise ConfigError(
                    f"publish.database_password_env names {self.database_password_env!r}, "
                    "which is not set; export it, or drop the setting"
                )
        if password is not None:
            url = url.set(password=password)
        return url.render_as_string(hide_password=False)

    def masked_url(self, default: str) -> str:
        """The URL as it may be printed or logged: the password replaced by ``***``."""
        from sqlalchemy.engine import make_url

        if self.database_url is None:
            return default
        return make_url(self.database_url.get_secret_value()).render_as_string(hide_password=True)


class ScheduleConfig(_Section):
    """When the served deployment runs (``recpipe serve``; see prefect.yaml for ``prefect deploy``).

    ``cron``: five fields, minute hour day month weekday, read in ``timezone`` (IANA name).
    Scheduled runs have no ``run_date``: the flow takes today's date (UTC) when it starts.
    """

    deployment: str = Field("recpipe-nightly", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    cron: str = "0 2 * * *"
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        fields = value.split()
        if len(fields) != 5 or not all(re.fullmatch(r"[0-9*/,\-A-Za-z?]+", f) for f in fields):
            raise ValueError(
                "expected a cron expression with five fields (minute hour day month weekday), "
                "e.g. '0 2 * * *' for 02:00 every day"
            )
        return " ".join(fields)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                "unknown timezone; use an IANA name such as 'UTC' or 'Europe/Paris'"
            ) from exc
        return value


class RefreshConfig(_Section):
    """The intraday refresh (``recpipe refresh``, deployment ``recpipe-refresh/<deployment>``
    of ``recpipe serve``): re-score the users with new events in the landing folder ``path``
    (default ``ingest.files.path`` when the source is ``landing``) for the newest published
    run date, every ``interval_minutes`` (or on ``cron`` when set). While the nightly for
    that date runs, a refresh waits up to ``wait_seconds`` behind it
    (``when_nightly_running = "wait"``) or gives up at once and leaves its files for the
    next one (``"skip"``). ``serve``: ``recpipe serve`` also serves the refresh when a
    landing folder is configured.
    """

    path: Path | None = None
    deployment: str = Field("recpipe-refresh", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    interval_minutes: float = Field(5.0, gt=0)
    cron: str | None = None
    when_nightly_running: Literal["wait", "skip"] = "wait"
    wait_seconds: float = Field(600.0, ge=0)
    serve: bool = True

    @field_validator("cron")
    @classmethod
    def _cron_fields(cls, value: str | None) -> str | None:
        return None if value is None else ScheduleConfig._five_fields(value)


class MonitorConfig(_Section):
    """Thresholds on tonight's recommendations, checked before publishing (tasks/monitor.py).

    Drift compares with the previous run date's published partition: ``*_jaccard`` bounds
    the mean Jaccard similarity of users' top-K lists, ``*_top1_changed`` the share of users
    whose first item changed. ``*_coverage`` bounds the share of the catalog recommended to
    someone, ``*_gini`` the concentration of recommendations on few items (0 even, 1 one
    item). ``*_data_age_days`` bounds how many days the newest event is older than the run
    date (stale data; ``validate.max_event_age_days`` can also stop the run at validation).
    A ``warn_*`` threshold crossed logs a warning and the run publishes; a ``fail_*``
    threshold crossed fails the run before publishing, so the previous tables keep serving.
    ``None`` switches a check off.

    The warnings are on by default, at levels a real catalog should not reach: fewer than
    5% of the catalog's items recommended to anyone (a popularity list gives about K /
    catalog size), a Gini above 0.95 (nearly every slot on a few items), a mean Jaccard
    under 0.1 or more than 90% of users with a new first item against the previous night
    (expected when the champion changes, worth a look otherwise), and a newest event more
    than 7 days before the run date.
    """

    warn_min_jaccard: float | None = Field(0.1, ge=0, le=1)
    fail_min_jaccard: float | None = Field(None, ge=0, le=1)
    warn_max_top1_changed: float | None = Field(0.9, ge=0, le=1)
    fail_max_top1_changed: float | None = Field(None, ge=0, le=1)
    warn_min_coverage: float | None = Field(0.05, ge=0, le=1)
    fail_min_coverage: float | None = Field(None, ge=0, le=1)
    warn_max_gini: float | None = Field(0.95, ge=0, le=1)
    fail_max_gini: float | None = Field(None, ge=0, le=1)
    warn_max_data_age_days: float | None = Field(7, ge=0)
    fail_max_data_age_days: float | None = Field(None, ge=0)


class CacheConfig(_Section):
    """Skip stages whose inputs are unchanged since they last ran for the same date.

    ``enabled``: ingest, validate and features are skipped when a content hash of their
    inputs, settings and code matches the marker their last run left and their outputs are
    untouched (tasks/storage/cache.py). ``reuse_models`` (on by default): train + evaluate is
    a cached stage too: a model trained and evaluated for the same date from identical
    features, catalog, settings and code (a finished MLflow run) is reused instead of being
    trained again. Off (``--retrain``) trains every model again.
    """

    enabled: bool = True
    reuse_models: bool = True


class LockConfig(_Section):
    """One run per date at a time (tasks/storage/locks.py): a second run for a date that is being
    run waits up to ``wait_seconds`` for the first to finish, then fails without writing."""

    wait_seconds: float = Field(0.0, ge=0)


class RunnerConfig(_Section):
    """Where the fanned-out tasks (scoring's user shards) run.

    ``local`` (default): in the flow's process, one shard after another. ``dask``: as
    Prefect tasks on Dask (prefect-dask's DaskTaskRunner): on the scheduler at
    ``address`` (e.g. ``tcp://10.0.0.5:8786``) when given, else on a local cluster of
    ``workers`` processes with ``threads_per_worker`` threads each, started for the run.
    Workers must see the workspace at the same path (a shared file system).
    """

    kind: Literal["local", "dask"] = "local"
    address: str | None = None
    workers: int = Field(2, ge=1)
    threads_per_worker: int = Field(1, ge=1)


# The sources load_config layers under the init kwargs: the environment, then the TOML file.
_LOADED_SOURCES: ContextVar[tuple[PydanticBaseSettingsSource, ...]] = ContextVar(
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
        return (init_settings, *_LOADED_SOURCES.get())


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], variables: Mapping[str, str]) -> None:
        self._variables = {name.lower(): value for name, value in variables.items()}
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self._variables


def _keys(model: type[BaseModel]) -> dict[str, Any]:
    """A section's keys as written in TOML and env var names (aliases over field names)."""
    return {field.alias or name: field for name, field in model.model_fields.items()}


def _section_class(annotation: Any) -> type[BaseModel] | None:
    return (
        annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    )


def _model_at(path: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = PipelineConfig
    for key in path:
        field = _keys(model).get(key) if model is not None else None
        model = _section_class(field.annotation) if field is not None else None
    return model


def _mentions_secret(annotation: Any) -> bool:
    return annotation in (SecretStr, SecretBytes) or any(
        _mentions_secret(arg) for arg in get_args(annotation)
    )


def _secret_paths(
    model: type[BaseModel], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    for key, field in _keys(model).items():
        if _mentions_secret(field.annotation):
            yield (*prefix, key)
        elif (section := _section_class(field.annotation)) is not None:
            yield from _secret_paths(section, (*prefix, key))


# Values never echoed in an error: secret-typed fields, and the database URL (it carries a
# password; it becomes a SecretStr later).
_SECRET_PATHS = frozenset({("publish", "database_url"), *_secret_paths(PipelineConfig)})


def _holds_secret(loc: tuple[Any, ...]) -> bool:
    keys = tuple(str(key) for key in loc)
    return any(keys[: len(path)] == path or path[: len(keys)] == keys for path in _SECRET_PATHS)


def _env_variables(environ: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """The ``RECPIPE__*`` variables in ``environ`` and the key path each sets.

    ``RECPIPE_WORKSPACE`` counts as ``RECPIPE__WORKSPACE``. A name that is not a known key
    is an error, and so is a whole section given as anything but a JSON object.
    """
    paths: dict[str, tuple[str, ...]] = {}
    for name in sorted(environ):
        if name.upper().startswith(ENV_PREFIX):
            paths[name] = tuple(name[len(ENV_PREFIX) :].lower().split(ENV_DELIMITER))
    if environ.get(ENV_WORKSPACE):
        double = [n for n, path in paths.items() if path == ("workspace",)]
        if double and environ[double[0]] != environ[ENV_WORKSPACE]:
            raise ConfigError(
                f"environment variables {ENV_WORKSPACE} and {double[0]} name different "
                "workspaces; expected one of them; unset the other"
            )
        paths[ENV_WORKSPACE] = ("workspace",)
    for name, path in paths.items():
        model: type[BaseModel] | None = PipelineConfig
        for depth, key in enumerate(path):
            dotted = ".".join(path[: depth + 1])
            if model is None:
                raise ConfigError(
                    f"environment variable {name}: {'.'.join(path[:depth])} is a setting, not a "
                    f"section, so it has no key {key!r}; expected "
                    f"{ENV_PREFIX}{ENV_DELIMITER.join(path[:depth]).upper()}=<value>"
                )
            keys = _keys(model)
            if key not in keys:
                raise ConfigError(
                    f"environment variable {name}: unknown key {dotted!r}; expected one of "
                    f"{', '.join(keys)}{' under ' + '.'.join(path[:depth]) if depth else ''}; "
                    "rename or unset the variable"
                )
            model = _section_class(keys[key].annotation)
        if model is not None and not _is_json_object(environ[name]):
            raise ConfigError(
                f"environment variable {name}: {'.'.join(path)} is a section; expected a JSON "
                f'object such as {{"{next(iter(_keys(model)))}": ...}}, or one variable per '
                f"setting such as {name}{ENV_DELIMITER}{next(iter(_keys(model))).upper()}"
            )
    return paths


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except json.JSONDecodeError:
        return False


def _provides(data: Mapping[str, Any], loc: tuple[Any, ...]) -> bool:
    """Whether ``data`` (one source's values) holds the value at ``loc`` or the one above it."""
    node: Any = data
    for key in loc:
        if not isinstance(node, Mapping):
            return True
        if key not in node:
            return False
        node = node[key]
    return bool(data)


def _describe(error: Any, origin: str | None) -> str:
    loc = tuple(error["loc"])
    text = f"{'.'.join(str(key) for key in loc) or '(top level)'}: {error['msg']}"
    if error["type"] == "extra_forbidden":
        # the value of an unknown key helps nobody and may be a mistyped secret
        model = _model_at(loc[:-1])
        if model is not None:
            text += f"; expected one of {', '.join(_keys(model))}"
        return text + (f" (from {origin})" if origin else "")
    got = "<hidden>" if _holds_secret(loc) else repr(error.get("input"))
    return text + f" (got {got}" + (f" from {origin})" if origin else ")")


def load_config(
    path: Path | str | None = None,
    overrides: dict[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> PipelineConfig:
    """Build the pipeline config: defaults < TOML file < env vars < overrides.

    ``environ`` replaces ``os.environ`` (``{}``: ignore the environment).
    """
    environ = os.environ if environ is None else environ
    env_paths = _env_variables(environ)
    variables = {name: environ[name] for name in env_paths if name != ENV_WORKSPACE}
    if ENV_WORKSPACE in env_paths:
        variables[f"{ENV_PREFIX}WORKSPACE"] = environ[ENV_WORKSPACE]
    sources: list[PydanticBaseSettingsSource] = [_MappingEnvSource(PipelineConfig, variables)]
    file_data: dict[str, Any] = {}
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"config file {path} not found; expected a TOML file such as recpipe.toml; "
                "check the path given with --config"
            )
        try:
            toml = TomlConfigSettingsSource(PipelineConfig, toml_file=path)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}; fix the file") from exc
        sources.append(toml)
        file_data = toml()

    token = _LOADED_SOURCES.set(tuple(sources))
    try:
        config = PipelineConfig(**(overrides or {}))
    except SettingsError as exc:  # the checks in _env_variables should leave none
        raise ConfigError(
            f"invalid recpipe configuration: {exc}; fix the RECPIPE__* environment variables"
        ) from exc
    except ValidationError as exc:
        given = InitSettingsSource(PipelineConfig, init_kwargs=dict(overrides or {}))()

        def origin(loc: tuple[Any, ...]) -> str | None:
            if _provides(given, loc):
                return "the CLI options / overrides"
            names = [
                name
                for name, env_path in env_paths.items()
                if env_path == loc[: len(env_path)] or loc == env_path[: len(loc)]
            ]
            if names:
                return f"environment variable {', '.join(names)}"
            return f"config file {path}" if _provides(file_data, loc) else None

        problems = "; ".join(_describe(err, origin(tuple(err["loc"]))) for err in exc.errors())
        raise ConfigError(
            f"invalid recpipe configuration: {problems}; fix each value where it comes from "
            "(the TOML file, the RECPIPE__* environment variable or the command-line option)"
        ) from exc
    finally:
        _LOADED_SOURCES.reset(token)
    return config.model_copy(update={"workspace": config.workspace.expanduser().resolve()})


def dump_with_secrets(config: PipelineConfig) -> str:
    """The config as JSON with its secrets' real values: only for handing it to a child
    process through a pipe, never for a log, a file or a Prefect parameter."""
    data = config.model_dump(mode="json", by_alias=True)
    if config.publish.database_url is not None:
        data["publish"]["database_url"] = config.publish.database_url.get_secret_value()
    return json.dumps(data)
