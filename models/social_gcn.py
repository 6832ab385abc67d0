"""A graph recommender over the user-item and the user-user graph (``social_gcn``).

LightGCN (He et al., SIGIR 2020) on one graph that joins both inputs, in the spirit of
DiffNet (Wu et al., SIGIR 2019) and of LightGCN with social edges:

* nodes: every user and every item; edges: the training interactions (user - item,
  weight 1) and the relations (user - user, weight ``social_weight`` times the
  relation's weight; a follow counts in both directions of the propagation);
* the adjacency is normalised symmetrically, A_hat = D^-1/2 A D^-1/2;
* each node has one learned embedding E_0; ``n_layers`` propagations
  E_{l+1} = A_hat E_l, and a node's vector is the mean of E_0 .. E_L;
* score(u, i) = <user vector u, item vector i>, trained with BPR (Rendle et al.,
  UAI 2009) on each training interaction against one uniformly drawn item, and L2
  (``l2``) on the batch's E_0 rows, as in LightGCN.

So a user's vector mixes their items' and their friends' (and friends' items') vectors:
a user with friends and no interactions is placed by the friends. The graph is kept
(``social_``, and the training matrix) and saved with the model; the vectors are
propagated again from the saved embeddings when loaded. A later history at scoring
time only decides which items are excluded (the user's vector is the fitted one).

Keras 3 over TensorFlow's sparse product; TensorFlow is imported when the network is
built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from models.base import ModelSettings
from models.keras_base import (
    TRAINING_COPIES,
    BatchSize,
    Epochs,
    KerasRecommender,
    KerasTrainingSettings,
    LearningRate,
    Patience,
    shuffled_batches,
)
from models.memory import (
    FLOAT32,
    INDEX,
    DataShape,
    MemoryEstimate,
    block_rows,
    dense_bytes,
    score_users,
    summed,
)
from models.social import SocialGraph


def propagation_matrix(
    interactions: sp.csr_matrix, social: sp.csr_matrix, social_weight: float
) -> sp.csr_matrix:
    """The symmetric normalised adjacency D^-1/2 A D^-1/2 over users then items: A holds
    the binary interactions (both directions) and ``social_weight`` times the relations
    made symmetric (the larger weight of u -> v and v -> u)."""
    n_users, n_items = interactions.shape
    binary = sp.csr_matrix((interactions > 0).astype(np.float32))
    relations = sp.csr_matrix(social, dtype=np.float32)
    relations = relations.maximum(relations.T) * np.float32(social_weight)
    adjacency = sp.bmat(
        [[relations if social_weight > 0 else None, binary], [binary.T, None]],
        format="csr",
        dtype=np.float32,
    )
    adjacency.resize((n_users + n_items, n_users + n_items))
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    scale = np.divide(1.0, np.sqrt(degree), out=np.zeros_like(degree), where=degree > 0)
    scale = sp.diags(scale.astype(np.float32))
    return sp.csr_matrix(scale @ adjacency @ scale, dtype=np.float32)


def bpr_with_l2(l2: float) -> Any:
    """Loss on the network's (B, 2) output: -log sigmoid(s(u, pos) - s(u, neg)) plus
    ``l2`` times half the squared norm of the batch's starting embeddings."""
    from keras import ops

    def loss(y_true: Any, output: Any) -> Any:
        return ops.softplus(-output[:, 0]) + l2 * output[:, 1]

    return loss


def build_network(
    adjacency: sp.csr_matrix, n_users: int, dim: int, n_layers: int, seed: int
) -> Any:
    """Keras model: (user, positive, negative) -> (B, 2) [s(u, pos) - s(u, neg), half the
    squared norm of the three starting embeddings]; ``vectors()`` gives every node's
    propagated vector (users first, then items)."""
    import keras
    import tensorflow as tf
    from keras import ops

    coo = adjacency.tocoo()
    order = np.lexsort((coo.col, coo.row))
    graph = tf.sparse.SparseTensor(
        indices=np.stack([coo.row[order], coo.col[order]], axis=1).astype(np.int64),
        values=coo.data[order].astype(np.float32),
        dense_shape=adjacency.shape,
    )

    class SocialGCNNetwork(keras.Model):
        def __init__(self) -> None:
            super().__init__(name="social_gcn")
            self.embeddings = self.add_weight(
                shape=(adjacency.shape[0], dim),
                initializer=keras.initializers.RandomNormal(stddev=0.1, seed=seed),
                name="node_embeddings",
            )
            self.built = True

        def vectors(self) -> Any:
            layer = self.embeddings
            total = layer
            for _ in range(n_layers):
                layer = tf.sparse.sparse_dense_matmul(graph, layer)
                total = total + layer
            return total / float(n_layers + 1)

        def call(self, inputs: dict[str, Any], training: bool = False) -> Any:
            vectors = self.vectors()
            user = ops.cast(inputs["user"], "int32")
            positive = ops.cast(inputs["positive"], "int32") + n_users
            negative = ops.cast(inputs["negative"], "int32") + n_users
            u = ops.take(vectors, user, axis=0)
            diff = ops.sum(
                u * (ops.take(vectors, positive, axis=0) - ops.take(vectors, negative, axis=0)),
                axis=-1,
            )
            start = [ops.take(self.embeddings, ids, axis=0) for ids in (user, positive, negative)]
            norms = 0.5 * sum(ops.sum(ops.square(e), axis=-1) for e in start)
            return ops.stack([diff, norms], axis=1)

    return SocialGCNNetwork()


class SocialGCNSettings(KerasTrainingSettings):
    """``embedding_dim`` per node, ``n_layers`` propagations; ``social_weight``: the
    weight of a relation against an interaction in the graph (0: the user-item graph
    alone, plain LightGCN); ``l2`` on the batch's starting embeddings."""

    embedding_dim: int = Field(64, ge=2)
    n_layers: int = Field(2, ge=1, le=4)
    social_weight: float = Field(1.0, ge=0)
    l2: float = Field(1e-4, ge=0)
    epochs: Epochs = 60
    batch_size: BatchSize = 4096
    learning_rate: LearningRate = 5e-3
    patience: Patience = 5


class SocialGCN(SocialGraph, KerasRecommender):
    """LightGCN over the joined user-item and user-user graph, BPR-trained."""

    name: ClassVar[str] = "social_gcn"
    personalized: ClassVar[bool] = True
    fitted_attributes: ClassVar[tuple[str, ...]] = (
        "train_matrix_",
        "social_",
        "network_",
        "history_",
    )
    fit_inputs: ClassVar[tuple[str, ...]] = ("social", "validation")
    required_inputs: ClassVar[tuple[str, ...]] = ("social",)
    inputs: ClassVar[frozenset[str]] = frozenset({"social"})
    settings_class: ClassVar[type[ModelSettings]] = SocialGCNSettings

    @classmethod
    def memory_estimate(cls, shape: DataShape, **params: Any) -> MemoryEstimate:
        """One embedding per user and item (nodes x dim) trained with Adam
        (``TRAINING_COPIES`` copies); every step propagates the whole table: the
        ``n_layers + 1`` layers and their gradients, nodes x dim each. The graph holds
        both directions of every interaction and relation: scipy's CSR while it is
        normalised (three copies) and TensorFlow's (int64 pairs and a float32 weight).
        Validation and scoring: the propagated vectors and a dense block of scores."""
        p = cls.settings(**params).model_dump()
        nodes, dim = shape.users + shape.items, p["embedding_dim"]
        edges = 2 * (shape.interactions + shape.relation_edges)
        table = dense_bytes(nodes, dim)
        block = block_rows(min(shape.users, p["score_batch_size"]), shape.items)
        train = {
            f"node embeddings, Adam moments, gradient and best copy, {TRAINING_COPIES} x 4 x "
            "nodes x dim": TRAINING_COPIES * table,
            "propagated layers and their gradients, 2 x (layers + 1) x 4 x nodes x dim": 2
            * (p["n_layers"] + 1)
            * table,
            "the graph, scipy CSR while normalised and TensorFlow's, 44 x edges": edges
            * (3 * (FLOAT32 + INDEX) + 2 * 8 + FLOAT32),
            "training triples, 3 x 4 x interactions": 3 * INDEX * shape.interactions,
            "a validation block's scores and top-k's copy, 2 x 4 x block users x items": 2
            * dense_bytes(block, shape.items),
        }
        score = {
            "node embeddings and propagated vectors, 2 x 4 x nodes x dim": 2 * table,
            "the graph, TensorFlow's, 20 x edges": edges * (2 * 8 + FLOAT32),
            "dense scores of a block, 4 x block users x items": dense_bytes(
                score_users(shape.items), shape.items
            ),
        }
        return summed("social_gcn", train, score)

    # -- network -------------------------------------------------------------------
    def _build_network(self) -> Any:
        p = self.params
        adjacency = propagation_matrix(self.train_matrix_, self.social_, p["social_weight"])
        return build_network(
            adjacency, self.train_matrix_.shape[0], p["embedding_dim"], p["n_layers"], p["seed"]
        )

    def _loss(self) -> Any:
        return bpr_with_l2(self.params["l2"])

    def _callbacks(self) -> list[Any]:
        """The propagated vectors are worked out again after each epoch's updates."""
        import keras

        model = self

        class _Forget(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                model._vectors = None

        return [_Forget()]

    # -- fitting -------------------------------------------------------------------
    def _fit(
        self,
        matrix: sp.csr_matrix,
        social: sp.csr_matrix,
        validation: tuple[np.ndarray, sp.csr_matrix] | None = None,
    ) -> None:
        self.social_ = social
        self._vectors: tuple[np.ndarray, np.ndarray] | None = None
        pairs = sp.csr_matrix((matrix > 0).astype(np.float32)).tocoo()
        users, items = pairs.row.astype(np.int32), pairs.col.astype(np.int32)
        n_items = matrix.shape[1]
        rng = np.random.default_rng(self.params["seed"] + 1)

        def batch(rows: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
            inputs = {
                "user": users[rows],
                "positive": items[rows],
                "negative": rng.integers(n_items, size=len(rows)).astype(np.int32),
            }
            return inputs, np.zeros(len(rows), dtype=np.float32)

        data = shuffled_batches(len(users), self.params["batch_size"], self.params["seed"], batch)
        self._train(data, validation)
        self._vectors = None  # early stopping may have restored an earlier epoch

    # -- scoring -------------------------------------------------------------------
    def node_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """The propagated (user vectors, item vectors) of the fitted network."""
        self._check_fitted()
        return self._propagated()

    def _propagated(self) -> tuple[np.ndarray, np.ndarray]:
        """The vectors of the network as it is (also while it trains: validation)."""
        cached: tuple[np.ndarray, np.ndarray] | None = getattr(self, "_vectors", None)
        if cached is None:
            from keras import ops

            vectors = np.asarray(ops.convert_to_numpy(self.network_.vectors()), np.float32)
            n_users = self.train_matrix_.shape[0]
            cached = self._vectors = (vectors[:n_users], vectors[n_users:])
        return cached

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        user_vectors, item_vectors = self._propagated()
        return np.asarray(user_vectors[users] @ item_vectors.T, dtype=np.float32)

    def _save_state(self, directory: Path) -> None:
        super()._save_state(directory)
        self._save_social(directory)

    def _load_state(self, directory: Path) -> None:
        self._load_social(directory)  # the network is built over the graph
        self._vectors = None
        super()._load_state(directory)
