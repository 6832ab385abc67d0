"""The features, the models trained on them, how they are evaluated and tracked.

Each model's section is the model's own settings class (``models/``), where its
defaults and bounds are declared.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import ByteSize, Field

from models.blend import BlendSettings
from models.caser import CaserSettings
from models.content_tower import ContentTowerSettings, HybridTowerSettings
from models.ease import EASESettings
from models.gru4rec import GRU4RecSettings
from models.hybrid import EASEMultDAESettings
from models.implicit_mf import ALSSettings, BPRSettings
from models.item_knn import ItemKNNSettings
from models.mult_dae import MultDAESettings
from models.mult_vae import MultVAESettings
from models.popularity import PopularitySettings, RecentPopularitySettings
from models.recvae import RecVAESettings
from models.sasrec import SASRecSettings
from models.social import SocialPopSettings
from models.social_gcn import SocialGCNSettings
from models.two_tower import TwoTowerSettings
from tasks.config.section import Section


class FeatureConfig(Section):
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
    ``max_validation_days``): users coming back, as the next days' users do; ``"random"``
    holds out a random ``latest_share`` of each user's events (users with at least
    ``latest_min_events``), the protocol for data without time (a night whose source has
    no timestamps switches to it). ``min_users`` and
    ``min_events`` default to the evaluate section's
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
    holdout: Literal["auto", "window", "latest", "returning", "random"] = "auto"
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


ModelName = Literal[
    "popularity",
    "recent_popularity",
    "item_knn",
    "ease",
    "blend",
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
    "content_tower",
    "hybrid_tower",
    "social_pop",
    "social_gcn",
]


class TrainConfig(Section):
    """Which models the nightly run trains (the popularity baseline is always worth keeping:
    the promotion gate compares against it) and each model's settings. The default set:
    popularity, ``blend`` (EASE blended with recent popularity, the weight chosen on
    validation; a weight of 0 is EASE itself) and Mult-DAE.

    Keras models stop early on NDCG over the last ``early_stopping_days`` of the
    training period, carved out of training; the hold-out that decides promotion
    is never used for training or tuning.
    """

    models: list[ModelName] = Field(["popularity", "blend", "mult_dae"])
    # trained beside ``models`` when the catalogue has content: they rank the items nobody
    # has interacted with yet (score.new_items_share of each list) and meet the gate too
    content_models: list[ModelName] = Field(["content_tower"])
    early_stopping_days: int = Field(7, ge=1)
    # the night's memory plan (tasks/planning/memory.py): a model whose estimated peak is
    # over the budget takes its scalable form or is left out; the budget is
    # ``memory_budget`` (e.g. "12GB") or, unset, this share of the available memory
    memory_budget: ByteSize | None = None
    memory_budget_share: float = Field(0.6, gt=0, le=1)
    popularity: PopularitySettings = PopularitySettings()
    recent_popularity: RecentPopularitySettings = RecentPopularitySettings()
    item_knn: ItemKNNSettings = ItemKNNSettings()
    ease: EASESettings = EASESettings()
    blend: BlendSettings = BlendSettings()
    als: ALSSettings = ALSSettings()
    bpr: BPRSettings = BPRSettings()
    mult_dae: MultDAESettings = MultDAESettings()
    mult_vae: MultVAESettings = MultVAESettings()
    recvae: RecVAESettings = RecVAESettings()
    ease_mult_dae: EASEMultDAESettings = EASEMultDAESettings()
    gru4rec: GRU4RecSettings = GRU4RecSettings()
    caser: CaserSettings = CaserSettings()
    sasrec: SASRecSettings = SASRecSettings()
    two_tower: TwoTowerSettings = TwoTowerSettings()
    content_tower: ContentTowerSettings = ContentTowerSettings()
    hybrid_tower: HybridTowerSettings = HybridTowerSettings()
    social_pop: SocialPopSettings = SocialPopSettings()
    social_gcn: SocialGCNSettings = SocialGCNSettings()


class EvaluateConfig(Section):
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


class TrackingConfig(Section):
    experiment: str = "recpipe-nightly"
    registered_model: str = "recpipe-recommender"
