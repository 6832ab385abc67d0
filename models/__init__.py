"""Recommenders behind one protocol (see models.base), and their metrics.

This package never imports Prefect or MLflow; TensorFlow is imported lazily.
"""

from __future__ import annotations

import json
from pathlib import Path

from models.base import BaseRecommender, NotFittedError, Recommender
from models.blend import Blend
from models.caser import Caser
from models.content_tower import ContentTower, HybridTower
from models.ease import EASE
from models.gru4rec import GRU4Rec
from models.hybrid import EASEMultDAE
from models.implicit_mf import ALS, BPR
from models.item_knn import ItemKNN
from models.keras_base import KerasRecommender
from models.mult_dae import MultDAE
from models.mult_vae import MultVAE
from models.popularity import Popularity, RecentPopularity
from models.recvae import RecVAE
from models.sasrec import SASRec
from models.social import SocialPop
from models.social_gcn import SocialGCN
from models.two_tower import TwoTower

MODEL_CLASSES: dict[str, type[BaseRecommender]] = {
    cls.name: cls
    for cls in (
        Popularity,
        RecentPopularity,
        ItemKNN,
        EASE,
        Blend,
        EASEMultDAE,
        ALS,
        BPR,
        MultDAE,
        MultVAE,
        RecVAE,
        GRU4Rec,
        Caser,
        SASRec,
        TwoTower,
        ContentTower,
        HybridTower,
        SocialPop,
        SocialGCN,
    )
}
#: the registered models trained with Keras (TensorFlow is imported when they fit)
KERAS_MODELS: frozenset[str] = frozenset(
    name for name, cls in MODEL_CLASSES.items() if issubclass(cls, KerasRecommender)
)


def make_recommender(name: str, **params: object) -> BaseRecommender:
    """A new, unfitted recommender of the registered type ``name``."""
    try:
        cls = MODEL_CLASSES[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; expected one of {sorted(MODEL_CLASSES)}"
        ) from None
    return cls(**params)


def declared_inputs(name: str) -> str:
    """What the registered model ``name`` reads beyond interactions (its class's
    ``inputs``), comma-separated and sorted: ``social``, ``content``, ``sequences``; ``-``
    for none or an unknown name."""
    cls = MODEL_CLASSES.get(name)
    return ",".join(sorted(cls.inputs)) if cls is not None and cls.inputs else "-"


def load_recommender(directory: Path | str) -> BaseRecommender:
    """Load any recommender saved with ``save(directory)``."""
    meta_path = Path(directory) / "recommender.json"
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"{directory} is not a saved recommender (no recommender.json); "
            "pass the folder a model's save() wrote"
        )
    name = json.loads(meta_path.read_text())["model"]
    return MODEL_CLASSES[name].load(directory)


__all__ = [
    "ALS",
    "BPR",
    "EASE",
    "KERAS_MODELS",
    "MODEL_CLASSES",
    "BaseRecommender",
    "Blend",
    "Caser",
    "ContentTower",
    "EASEMultDAE",
    "GRU4Rec",
    "HybridTower",
    "ItemKNN",
    "MultDAE",
    "MultVAE",
    "NotFittedError",
    "Popularity",
    "RecVAE",
    "RecentPopularity",
    "Recommender",
    "SASRec",
    "SocialGCN",
    "SocialPop",
    "TwoTower",
    "declared_inputs",
    "load_recommender",
    "make_recommender",
]
