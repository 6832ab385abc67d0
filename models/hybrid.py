"""EASE + Mult-DAE: a hybrid of a linear item-item model and a deep autoencoder.

Both models are fitted on the same interactions; a user's score for an item is a
blend of the two models' scores, each first standardised over the items of that
user's row (zero mean, unit variance), so neither scale dominates:

    score = (1 - weight) * z(EASE scores) + weight * z(Mult-DAE logits)

``weight`` is chosen on the validation target given to ``fit`` (NDCG@``val_k``
over the candidates in ``weights``, ties to the smaller weight); without one it is
``default_weight``. The Mult-DAE also stops early on that target. Its settings default
to Liang et al.'s (:data:`models.mult_dae.PAPER_SETTINGS`) and its seed to the
hybrid's ``seed``. This is a hybrid, not a deep model: it is reported under its own name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar

import numpy as np
import scipy.sparse as sp
from pydantic import Field, model_validator

from models.base import BaseRecommender, ModelSettings
from models.ease import EASE, EASESettings
from models.memory import DataShape, MemoryEstimate, dense_bytes, score_users
from models.metrics import ndcg_at_k
from models.mult_dae import PAPER_SETTINGS, MultDAE, MultDAESettings
from models.ranking import top_k

DEFAULT_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
DEFAULT_SEED = 42
#: bytes per (user, item) cell while both parts' scores are standardised and blended: the
#: standardised EASE scores (4), the raw Mult-DAE scores (4), their float64 copy (8), the
#: centred scores (8), their quotient by the spread (8) and its float32 copy (4)
BLEND_BYTES = 36


def standardised(scores: np.ndarray) -> np.ndarray:
    """Each row of ``scores`` with zero mean and unit variance (a constant row: zeros);
    an item a part does not rank (score -inf: outside a restricted autoencoder's items)
    takes its row's lowest ranked score."""
    scores = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(scores)
    if not finite.all():
        lowest = np.where(finite, scores, np.inf).min(axis=1, keepdims=True)
        scores = np.where(finite, scores, np.where(np.isfinite(lowest), lowest, 0.0))
    centred = scores - scores.mean(axis=1, keepdims=True)
    spread = scores.std(axis=1, keepdims=True)
    return np.asarray(centred / np.where(spread > 0, spread, 1.0), dtype=np.float32)


class EASEMultDAESettings(ModelSettings):
    """The two parts' settings (``ease``, ``mult_dae``), the blend ``weights`` tried on
    validation (NDCG@``val_k``) and the ``default_weight`` without a validation target.
    ``seed``: the Mult-DAE's, unless ``mult_dae`` sets its own."""

    ease: EASESettings = EASESettings(l2=300.0)
    mult_dae: MultDAESettings = MultDAESettings(**PAPER_SETTINGS, seed=DEFAULT_SEED)
    weights: list[Annotated[float, Field(ge=0, le=1)]] = Field(list(DEFAULT_WEIGHTS), min_length=1)
    default_weight: float = Field(0.5, ge=0, le=1)
    seed: int = DEFAULT_SEED
    val_k: int = Field(10, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _dae_seed(cls, data: Any) -> Any:
        """A ``mult_dae`` given without a seed, or left at its default, takes ``seed``."""
        if isinstance(data, dict) and "seed" in data:
            dae = data.get("mult_dae", PAPER_SETTINGS)
            if isinstance(dae, dict) and "seed" not in dae:
                data = {**data, "mult_dae": {**dae, "seed": data["seed"]}}
        return data


class EASEMultDAE(BaseRecommender):
    """Blend of EASE and Mult-DAE scores, the blend weight chosen on validation."""

    name: ClassVar[str] = "ease_mult_dae"
    personalized: ClassVar[bool] = True
    fitted_attributes: ClassVar[tuple[str, ...]] = ("train_matrix_", "ease_", "dae_", "weight_")
    fit_inputs: ClassVar[tuple[str, ...]] = ("validation",)
    concurrent_scoring: ClassVar[bool] = False  # its Mult-DAE scores with TensorFlow
    settings_class: ClassVar[type[ModelSettings]] = EASEMultDAESettings

    @classmethod
    def memory_estimate(cls, shape: DataShape, **params: Any) -> MemoryEstimate:
        """EASE trains first; its fitted weights (at most its scoring memory) stay while
        the Mult-DAE trains and while the blend weight is chosen, which standardises
        both parts' dense scores of a block of validation users: ``BLEND_BYTES`` (36) x
        block users x items. Scoring a block runs both parts and the same blend."""
        p = cls.settings(**params).model_dump()
        ease = EASE.memory_estimate(shape, **p["ease"])
        dae = MultDAE.memory_estimate(shape, **p["mult_dae"])
        blend = BLEND_BYTES * dense_bytes(score_users(shape.items), shape.items, 1)
        after_ease = ease.score_bytes + max(dae.train_bytes, dae.score_bytes + blend)
        train = max(ease.train_bytes, after_ease)
        score = ease.score_bytes + dae.score_bytes + blend
        if train >= score and train == ease.train_bytes:
            dominant = ease.dominant
        elif train >= score and blend > dae.train_bytes and blend > ease.score_bytes:
            dominant = (
                "ease_mult_dae (training): blending both parts' standardised validation "
                "scores, 36 x block users x items"
            )
        elif train >= score:
            dominant = dae.dominant if dae.peak_bytes > ease.score_bytes else ease.dominant
        else:
            dominant = ease.dominant if ease.score_bytes > dae.score_bytes else dae.dominant
        return MemoryEstimate(train_bytes=train, score_bytes=score, dominant=dominant)

    def _fit(
        self, matrix: sp.csr_matrix, validation: tuple[np.ndarray, sp.csr_matrix] | None = None
    ) -> None:
        weights = self.params["weights"]
        self.ease_ = EASE(**self.params["ease"]).fit(matrix)
        self.dae_ = MultDAE(**self.params["mult_dae"]).fit(
            matrix, validation=validation, callbacks=self._fit_callbacks
        )
        self.weight_ = self.params["default_weight"]
        self.validation_ndcg_: dict[str, float] = {}
        if validation is not None:
            users, relevant = validation
            k = self.params["val_k"]
            ranked: dict[float, list[np.ndarray]] = {w: [] for w in sorted(weights)}
            step = score_users(matrix.shape[1])
            for start in range(0, len(users), step):  # one block of scores at a time
                block = users[start : start + step]
                rows = matrix[block]
                ease, dae = self._parts(block, rows)
                for weight, blocks in ranked.items():
                    blocks.append(top_k((1 - weight) * ease + weight * dae, k, exclude=rows)[0])
            for weight, blocks in ranked.items():
                recommended = np.concatenate(blocks) if blocks else np.empty((0, k), np.int64)
                self.validation_ndcg_[str(weight)] = ndcg_at_k(recommended, relevant, k)
            best = max(self.validation_ndcg_.values())
            self.weight_ = min(float(w) for w, v in self.validation_ndcg_.items() if v == best)

    def _parts(self, users: np.ndarray, history: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """Both components' standardised scores for ``history`` (one row per user)."""
        ease = standardised(self.ease_._score(users, history))
        dae = standardised(self.dae_._score(users, history))
        return ease, dae

    def refit_params(self) -> dict[str, Any]:
        """Settings that repeat this fit without a validation target: the blend weight it
        chose and the epochs the Mult-DAE stopped at."""
        return {
            **self.params,
            "mult_dae": {**self.params["mult_dae"], "epochs": self.dae_.refit_params()["epochs"]},
            "weights": [self.weight_],
            "default_weight": self.weight_,
        }

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        ease, dae = self._parts(users, history)
        return np.asarray((1 - self.weight_) * ease + self.weight_ * dae)

    @property
    def history_(self) -> dict[str, list[float]]:
        """The Mult-DAE's training curves (the EASE part has none)."""
        return self.dae_.history_ if getattr(self, "dae_", None) is not None else {}

    def _save_state(self, directory: Path) -> None:
        self.ease_.save(directory / "ease")
        self.dae_.save(directory / "mult_dae")
        (directory / "blend.txt").write_text(repr(float(self.weight_)))

    def _load_state(self, directory: Path) -> None:
        self.ease_ = EASE.load(directory / "ease")
        self.dae_ = MultDAE.load(directory / "mult_dae")
        self.weight_ = float((directory / "blend.txt").read_text())
