"""Cornac's SBPR (Zhao et al., "Leveraging Social Connections to Improve Personalized
Ranking for Collaborative Filtering", CIKM 2014), a published social recommender, on the
split of ``recpipe bench social``: the reference beside the project's social models.

Cornac is a benchmark-only reference, not a dependency of recpipe: ``pip install
cornac``. Cornac 3.0.1's SBPR cannot fit as shipped (its ``fit`` calls
``_prepare_data()`` and ``_prepare_social_data()`` without the training set they take,
a TypeError, and the latter calls ``numpy.in1d``, gone in numpy 2); :class:`_SBPR` gives
them the training set and builds the same social data (each user's friends' items the
user has not seen, with how many friends saw each) with scipy. The SGD is Cornac's.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse as sp

#: SBPR's settings here (Cornac's defaults but for the factors and iterations)
SBPR_PARAMS: dict[str, Any] = {
    "k": 64,
    "max_iter": 50,
    "learning_rate": 0.05,
    "lambda_u": 0.01,
    "lambda_v": 0.01,
    "lambda_b": 0.01,
}


def cornac_missing() -> str | None:
    """Why Cornac cannot run here, or None when it imports."""
    try:
        import cornac  # noqa: F401
    except ImportError as exc:
        return f"cornac is not installed ({exc}); pip install cornac to measure its SBPR"
    return None


def _sbpr_class() -> type:
    import cornac

    class _SBPR(cornac.models.SBPR):
        def _prepare_data(self, train_set: Any = None) -> Any:
            return cornac.models.BPR._prepare_data(self, train_set or self.train_set)

        def _prepare_social_data(self, train_set: Any = None) -> Any:
            train_set = train_set or self.train_set
            x = sp.csr_matrix(train_set.matrix)
            n = train_set.num_users
            users = set(train_set.uir_tuple[0])
            rows, cols, _weights = train_set.user_graph.get_train_triplet(users, users)
            friends = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
            friends.data[:] = 1.0
            seen = (x > 0).astype(np.float64)
            counts = sp.csr_matrix(friends @ seen)
            counts = sp.csr_matrix(counts - counts.multiply(seen))
            counts.eliminate_zeros()
            counts.sort_indices()
            dtype = x.indices.dtype
            return (
                counts.indices.astype(dtype),
                counts.data.astype(dtype),
                counts.indptr.astype(dtype),
            )

    return _SBPR


class CornacSBPR:
    """Cornac's SBPR fitted on dense indices, scored like a recpipe model
    (``recommend(users, k, history=...)``, the history excluded)."""

    def __init__(self, seed: int = 42, **params: Any) -> None:
        self.params = {**SBPR_PARAMS, **params}
        self.seed = seed

    def fit(self, train: sp.csr_matrix, social: sp.csr_matrix) -> CornacSBPR:
        from cornac.data import GraphModality
        from cornac.eval_methods import BaseMethod

        coo = sp.csr_matrix(train).tocoo()
        triples = [(str(u), str(i), 1.0) for u, i in zip(coo.row, coo.col, strict=True)]
        edges = sp.csr_matrix(social).tocoo()
        trust = [(str(u), str(v), 1.0) for u, v in zip(edges.row, edges.col, strict=True)]
        method = BaseMethod.from_splits(
            train_data=triples,
            test_data=triples[:1],
            exclude_unknowns=True,
            verbose=False,
            user_graph=GraphModality(data=trust),
        )
        start = time.perf_counter()
        model = _sbpr_class()(seed=self.seed, verbose=False, **self.params)
        model.fit(method.train_set)
        self.fit_seconds = time.perf_counter() - start
        n_users, n_items = train.shape
        dim = model.u_factors.shape[1]
        self.user_factors = np.zeros((n_users, dim), dtype=np.float32)
        self.item_factors = np.zeros((n_items, dim), dtype=np.float32)
        self.item_bias = np.full(n_items, -np.inf, dtype=np.float32)  # unseen: never ranked
        uid, iid = method.train_set.uid_map, method.train_set.iid_map
        users = np.array([int(raw) for raw in uid], dtype=np.int64)
        items = np.array([int(raw) for raw in iid], dtype=np.int64)
        self.user_factors[users] = model.u_factors[list(uid.values())]
        self.item_factors[items] = model.i_factors[list(iid.values())]
        self.item_bias[items] = model.i_biases[list(iid.values())]
        return self

    def recommend(
        self, users: np.ndarray, k: int, history: sp.csr_matrix
    ) -> tuple[np.ndarray, np.ndarray]:
        from models.ranking import top_k

        scores = self.user_factors[users] @ self.item_factors.T + self.item_bias
        return top_k(scores, k, exclude=sp.csr_matrix(history)[users], overwrite=True)
