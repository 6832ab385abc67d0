"""Matrix factorisation baselines from the ``implicit`` library: ALS and BPR.

* :class:`ALS`: weighted matrix factorisation for implicit feedback (Hu, Koren &
  Volinsky, ICDM 2008), implicit's ``AlternatingLeastSquares`` with its conjugate
  gradient solver; the binary interaction matrix is the preference, ``alpha`` the
  confidence given to an observed interaction.
* :class:`BPR`: Bayesian Personalised Ranking (Rendle et al., UAI 2009), implicit's
  ``BayesianPersonalizedRanking`` (SGD on sampled (user, seen, unseen) triples; its
  item factors carry an item bias column). implicit draws each triple's unseen item
  from the list of all interactions, so in proportion to the item's popularity (the
  paper and RecBole draw it uniformly); training against such negatives pushes a
  popular item's score down by about the log of its popularity, the more the longer
  it trains. ``popularity_correction`` adds ``popularity_correction * log(1 + n_i)``
  back to item i's score (``n_i`` its training interactions), as the log-Q correction
  does for sampled softmax; 0 scores with the factors alone.

``implicit`` does the fitting; this module only adapts it to the protocol of
:mod:`models.base`. The fitted user and item factors are kept as numpy arrays and
saved with ``numpy``, so a loaded model scores without ``implicit`` and without
refitting: ``scores = user_factors[users] @ item_factors.T``.

A ``history`` that differs from a user's training row (a later history at scoring
time) changes an ALS user's factors: they are recomputed from that history with the
item factors held fixed, as one ALS half-step (implicit's ``recalculate_user``).
BPR has no such fold-in; its users keep their trained factors and the history only
decides which items are excluded.

Wide catalogs: at least ``ann_min_items`` items (default 100,000; 0 = never), the model
also keeps an HNSW graph of its item factors (:mod:`models.ann`), built at the end of
``fit`` and saved with the factors, and ranks the candidates it retrieves for each user
(scored exactly) instead of every item; below that width scoring is dense and exact.
BPR's popularity correction is one more column of the indexed vectors, so the graph
searches the corrected scores.

Seeded: ``seed`` is implicit's ``random_state`` (the initial factors and, for BPR,
the sampled triples). ALS solves each user (item) independently, so its result does
not depend on ``num_threads``; BPR's SGD is lock-free across threads (Hogwild), so
only ``num_threads=1`` (its default here) repeats exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from models.ann import (
    ANN_MIN_ITEMS,
    ESTIMATE_WIDTH,
    AnnMinItems,
    IndexedScoring,
    candidate_bytes,
    index_bytes,
    uses_index,
)
from models.base import BaseRecommender, ModelSettings
from models.memory import (
    FLOAT32,
    FLOAT64,
    INDEX,
    DataShape,
    MemoryEstimate,
    dense_bytes,
    score_users,
    summed,
)


def _one_blas_thread() -> Any:
    """implicit parallelises over users itself; a BLAS thread pool under it only
    oversubscribes the cores (implicit warns and recommends this limit). implicit is
    imported first, so the BLAS libraries it loads are limited too."""
    import implicit.cpu.als
    import implicit.cpu.bpr  # noqa: F401
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, "blas")


class ImplicitMF(IndexedScoring, BaseRecommender):
    """What ALS and BPR share: fitting through implicit, scoring and saving the factors,
    and above ``ann_min_items`` items the index of the item factors."""

    concurrent_scoring: ClassVar[bool] = False  # BLAS products, threaded already

    fitted_attributes: ClassVar[tuple[str, ...]] = (
        "train_matrix_",
        "user_factors_",
        "item_factors_",
    )

    def _implicit_model(self) -> Any:
        raise NotImplementedError

    @classmethod
    def _factor_memory(
        cls,
        shape: DataShape,
        columns: int,
        train: dict[str, int],
        score: dict[str, int],
        ann_min_items: int,
    ) -> MemoryEstimate:
        """Both models hold float32 user and item factors of ``columns`` columns (drawn
        at random, then scaled: two copies while they are made). Scoring a block is a
        dense block x items float32 product, or with the index (at least
        ``ann_min_items`` items; built at the end of training) the graph and a block's
        candidates."""
        factors = (shape.users + shape.items) * columns * FLOAT32
        if uses_index(shape.items, ann_min_items):
            graph = index_bytes(shape.items, columns)
            graph_label = f"HNSW graph of the item factors, {graph // shape.items} x items"
            train = {**train, graph_label: graph}
            scoring = {
                graph_label: graph,
                f"a block's candidates and their vectors, block users x {ESTIMATE_WIDTH} x "
                f"(16 + 4 x {columns})": candidate_bytes(columns),
            }
        else:
            scoring = {
                "dense scores of a block, 4 x block users x items": dense_bytes(
                    score_users(shape.items), shape.items
                )
            }
        return summed(
            cls.name,
            {
                f"user and item factors while drawn, 2 x 4 x (users + items) x {columns}": (
                    2 * factors
                ),
                **train,
            },
            {
                f"user and item factors, 4 x (users + items) x {columns}": factors,
                **scoring,
                **score,
            },
        )

    def _fit(self, matrix: sp.csr_matrix) -> None:
        with _one_blas_thread():
            self._fit_implicit(matrix)

    def _fit_implicit(self, matrix: sp.csr_matrix) -> None:
        binary = (matrix > 0).astype(np.float32).tocsr()
        model = self._implicit_model()
        callbacks = self._fit_callbacks
        for callback in callbacks:
            callback.on_train_begin()

        def report(iteration: int, *_: Any) -> None:
            for callback in callbacks:
                callback.on_epoch_end(iteration)

        model.fit(binary, show_progress=False, callback=report)
        self.user_factors_ = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self._index_items()

    def _user_factors(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return np.asarray(self.user_factors_[users])

    def index_vectors(self) -> np.ndarray:
        return self.item_factors_

    def query_vectors(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return self._user_factors(users, history)

    def _query_threads(self) -> int:
        return int(self.params["num_threads"]) or -1

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return self._user_factors(users, history) @ self.item_factors_.T

    def _save_state(self, directory: Path) -> None:
        np.save(directory / "user_factors.npy", self.user_factors_)
        np.save(directory / "item_factors.npy", self.item_factors_)
        self._save_index(directory)

    def _load_state(self, directory: Path) -> None:
        self.user_factors_ = np.load(directory / "user_factors.npy")
        self.item_factors_ = np.load(directory / "item_factors.npy")
        self._load_index(directory)


def _same_rows(a: sp.csr_matrix, b: sp.csr_matrix) -> bool:
    """Whether two binary histories hold the same items in every row."""
    a, b = (a > 0).tocsr(), (b > 0).tocsr()
    a.sort_indices()
    b.sort_indices()
    return (
        a.shape == b.shape
        and np.array_equal(a.indptr, b.indptr)
        and np.array_equal(a.indices, b.indices)
    )


class ALSSettings(ModelSettings):
    """``factors`` latent dimensions, ``iterations`` ALS sweeps; ``alpha``: the confidence
    of an observed interaction; ``num_threads`` 0: every core; ``ann_min_items``: rank
    through an index of the item factors from this many items (0: never)."""

    factors: int = Field(32, ge=1)
    regularization: float = Field(20.0, ge=0)
    alpha: float = Field(2.0, gt=0)
    iterations: int = Field(15, ge=1)
    seed: int = 42
    num_threads: int = Field(0, ge=0)
    ann_min_items: AnnMinItems = ANN_MIN_ITEMS


class ALS(ImplicitMF):
    """Implicit-feedback ALS (implicit's AlternatingLeastSquares, conjugate gradient)."""

    name: ClassVar[str] = "als"
    personalized: ClassVar[bool] = True
    settings_class: ClassVar[type[ModelSettings]] = ALSSettings

    @classmethod
    def memory_estimate(cls, shape: DataShape, **params: Any) -> MemoryEstimate:
        """Four CSR copies of the interactions: ``fit``'s float32 one, the binary one,
        implicit's confidence (alpha times it) and its items x users transpose; the
        factors; a dense block of scores."""
        p = cls.settings(**params).model_dump()
        train = {"CSR copies of the training matrix, 4 x CSR": 4 * shape.csr_bytes()}
        return cls._factor_memory(shape, p["factors"], train, {}, p["ann_min_items"])

    def _implicit_model(self) -> Any:
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares(
            factors=self.params["factors"],
            regularization=self.params["regularization"],
            alpha=self.params["alpha"],
            iterations=self.params["iterations"],
            num_threads=self.params["num_threads"],
            random_state=self.params["seed"],
        )

    def _user_factors(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        if _same_rows(history, self.train_matrix_[users]):
            return np.asarray(self.user_factors_[users])
        with _one_blas_thread():
            model = self._implicit_model()
            model.item_factors = self.item_factors_
            binary = (history > 0).astype(np.float32).tocsr()
            factors = model.recalculate_user(np.arange(len(users)), binary)
        return np.asarray(factors, dtype=np.float32)


class BPRSettings(ModelSettings):
    """SGD over sampled triples: ``iterations`` epochs at ``learning_rate``.
    ``popularity_correction``: add this times log(1 + item count) back to an item's score
    (implicit samples negatives by popularity; 0: no correction). One thread repeats
    exactly; more are faster but not bit-for-bit repeatable. ``ann_min_items``: rank
    through an index of the item factors from this many items (0: never)."""

    factors: int = Field(64, ge=1)
    learning_rate: float = Field(0.005, gt=0)
    regularization: float = Field(0.001, ge=0)
    iterations: int = Field(100, ge=1)
    popularity_correction: float = Field(0.0, ge=0)
    seed: int = 42
    num_threads: int = Field(1, ge=0)
    ann_min_items: AnnMinItems = ANN_MIN_ITEMS


class BPR(ImplicitMF):
    """Bayesian Personalised Ranking (implicit's BayesianPersonalizedRanking)."""

    name: ClassVar[str] = "bpr"
    personalized: ClassVar[bool] = True
    settings_class: ClassVar[type[ModelSettings]] = BPRSettings

    @classmethod
    def memory_estimate(cls, shape: DataShape, **params: Any) -> MemoryEstimate:
        """Two CSR copies of the interactions (``fit``'s float32 one, the binary one) and
        implicit's user of every interaction (int64, then int32); factors of
        ``factors + 1`` columns (the item bias); a dense block of scores and, with the
        popularity correction, the item counts and their logarithm."""
        p = cls.settings(**params).model_dump()
        train = {
            "CSR copies of the training matrix, 2 x CSR": 2 * shape.csr_bytes(),
            "the user of every interaction, 12 x interactions": shape.interactions
            * (FLOAT64 + INDEX),
        }
        score = {}
        columns = p["factors"] + 1
        if p["popularity_correction"]:
            score["item counts and their log, 20 x items"] = shape.items * (2 * FLOAT64 + FLOAT32)
            if uses_index(shape.items, p["ann_min_items"]):
                columns += 1  # the correction is a column of the indexed vectors
                score["indexed vectors: the item factors and the correction"] = (
                    shape.items * columns * FLOAT32
                )
        return cls._factor_memory(shape, columns, train, score, p["ann_min_items"])

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        scores = super()._score(users, history)
        weight = self.params["popularity_correction"]
        if weight:
            scores += self._correction()
        return scores

    def _correction(self) -> np.ndarray:
        """``popularity_correction * log(1 + n_i)`` per item."""
        counts = np.bincount(self.train_matrix_.indices, minlength=self.n_items_)
        return np.float32(self.params["popularity_correction"]) * np.log1p(counts).astype(
            np.float32
        )

    def index_vectors(self) -> np.ndarray:
        """The item factors (their last column the item bias), and the correction as one
        more column when there is one."""
        if not self.params["popularity_correction"]:
            return self.item_factors_
        return np.hstack([self.item_factors_, self._correction()[:, None]])

    def query_vectors(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        """The user factors (their last column 1, against the bias), and 1 against the
        correction when there is one."""
        factors = np.asarray(self.user_factors_[users])
        if not self.params["popularity_correction"]:
            return factors
        return np.hstack([factors, np.ones((len(factors), 1), dtype=np.float32)])

    def _implicit_model(self) -> Any:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        return BayesianPersonalizedRanking(
            factors=self.params["factors"],
            learning_rate=self.params["learning_rate"],
            regularization=self.params["regularization"],
            iterations=self.params["iterations"],
            num_threads=self.params["num_threads"],
            random_state=self.params["seed"],
        )
