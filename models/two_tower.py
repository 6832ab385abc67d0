"""Two-tower retrieval model (Yi et al., "Sampling-Bias-Corrected Neural Modeling for Large
Corpus Item Recommendations", RecSys 2019; Covington et al., YouTube DNN, RecSys 2016).

* User tower: the mean of the user's history (a bag of items, so users are folded
  in from their current history without retraining) -> dense layers -> unit vector.
* Item tower: an item-id embedding, concatenated with the item's content features
  when ``fit(..., item_features=F)`` gives them (F: n_items x d floats) -> dense
  layers -> unit vector.
* Score = cosine(user, item) / ``temperature``.
* ``loss="softmax"``: in-batch sampled softmax over the batch's positive items,
  same-item collisions masked, with (``logq_correction=True``) the logQ correction
  of Yi et al.: subtract the log of the item's share of training pairs, the
  probability that it is sampled as an in-batch negative. ``loss="bpr"``: Rendle et
  al.'s BPR with one uniformly sampled negative per positive.

Training pairs are (user, item) interactions; the user's input is the user's
history *without* that item, so the model learns to predict held-out items.

Cold start. An item with no training interactions has an untrained id embedding,
so at scoring time its id part is zeroed and it is scored from its content
features alone; ``id_dropout`` zeroes the id part of random training items so the
tower learns to do that (DropoutNet, Volkovs et al., NeurIPS 2017). A user with
no history has an all-zero bag: the user tower then outputs one learned
"anonymous user" vector, i.e. every such user gets the same non-personalised
ranking.

Wide catalogs: at least ``ann_min_items`` items (default 100,000; 0 = never), the item
tower's outputs are indexed in an HNSW graph (:mod:`models.ann`) at the end of ``fit``
and on ``load`` (saved with the weights), and each user's retrieved candidates are
ranked (scored exactly) instead of every item; below that width scoring is dense.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any, ClassVar, Literal

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
from models.base import ModelSettings
from models.keras_base import (
    SCORE_COPIES,
    BatchSize,
    Dropout,
    Epochs,
    KerasRecommender,
    KerasTrainingSettings,
    SeededInitializers,
    dense_params,
    keras_memory,
    shuffled_batches,
)
from models.memory import (
    FLOAT32,
    INDEX,
    DataShape,
    MemoryEstimate,
    dense_bytes,
    score_users,
)


def bpr_loss(y_true: Any, score_diff: Any) -> Any:
    """BPR: -log sigmoid(s(u, pos) - s(u, neg)) per example."""
    from keras import ops

    return ops.softplus(-score_diff)


def _in_batch_logits(temperature: float) -> Any:
    """Layer: (users, items, item ids, log q) -> B x B logits, same-item collisions masked."""
    import keras
    from keras import ops

    class InBatchLogits(keras.layers.Layer):
        def call(self, inputs: list[Any]) -> Any:
            users, items, ids, log_q = inputs
            logits = ops.matmul(users, ops.transpose(items)) / temperature
            logits = logits - ops.expand_dims(log_q, 0)
            same = ops.equal(ops.expand_dims(ids, 1), ops.expand_dims(ids, 0))
            collision = ops.logical_and(same, ops.logical_not(ops.eye(ops.shape(ids)[0]) > 0))
            return ops.where(collision, -1e9, logits)

    return InBatchLogits(name="in_batch_logits")


class TwoTowerSettings(KerasTrainingSettings):
    """Each tower: dense ReLU layers of ``hidden_dims`` units, then ``embedding_dim``;
    ``loss`` "softmax" (in-batch, at ``temperature``, with the logQ correction when
    ``logq_correction``) or "bpr"; ``id_dropout``: the share of training items whose id
    part is zeroed (cold start); ``l2`` on the dense weights; ``ann_min_items``: rank
    through an index of the item vectors from this many items (0: never)."""

    embedding_dim: int = Field(64, ge=4)
    hidden_dims: list[int] = Field([128])
    loss: Literal["softmax", "bpr"] = "softmax"
    temperature: float = Field(0.1, gt=0)
    logq_correction: bool = True
    id_dropout: Dropout = 0.0
    l2: float = Field(0.0, ge=0)
    epochs: Epochs = 20
    batch_size: BatchSize = 256
    ann_min_items: AnnMinItems = ANN_MIN_ITEMS


class TwoTower(IndexedScoring, KerasRecommender):
    """User tower over the history bag, item tower over id (+ content features)."""

    name: ClassVar[str] = "two_tower"
    personalized: ClassVar[bool] = True
    fitted_attributes: ClassVar[tuple[str, ...]] = (
        "train_matrix_",
        "item_features_",
        "network_",
        "history_",
    )
    fit_inputs: ClassVar[tuple[str, ...]] = ("item_features", "validation")
    inputs: ClassVar[frozenset[str]] = frozenset({"content"})
    settings_class: ClassVar[type[ModelSettings]] = TwoTowerSettings

    #: float32 batch x n_items arrays alive in one training step: the dense histories
    #: (numpy and tensor) and the bag they are divided into
    ACTIVATIONS = 4

    @classmethod
    def memory_estimate(cls, shape: DataShape, **params: Any) -> MemoryEstimate:
        """A user tower reading an items-wide bag (an items x dim layer), an item tower
        over items x dim id embeddings, each with its dense layers; a batch is
        batch_size dense histories. Its training pairs (one per interaction) are held
        as int64 users and int32 items beside a COO copy; scoring and validation run the
        item tower over every item (no content features counted: they are the caller's).
        With the index (at least ``ann_min_items`` items) scoring holds the graph of the
        item vectors and a block's candidates instead of a block's dense scores; the user
        tower still reads each block's items-wide histories."""
        p = cls.settings(**params).model_dump()
        items, dim, hidden = shape.items, p["embedding_dim"], list(p["hidden_dims"])

        def mlp(n_in: int) -> int:
            sizes = [n_in, *hidden, dim]
            return sum(dense_params(a, b) for a, b in pairwise(sizes))

        n_params = dense_params(items, dim) + mlp(dim) + items * dim + mlp(dim)
        item_vectors = items * (2 * dim + sum(hidden)) * FLOAT32 * 2
        data = {
            "binary CSR copies of the training matrix, 2 x CSR": 2 * shape.csr_bytes(),
            "training pairs and their COO, 24 x interactions": (
                shape.interactions * (3 * INDEX + 8 + INDEX)
            ),
            "item tower outputs over every item, 8 x items x (2 dim + hidden)": item_vectors,
        }
        estimate = keras_memory(
            "two_tower",
            shape,
            p,
            n_params,
            batch_cells=p["batch_size"] * items,
            activation_copies=cls.ACTIVATIONS,
            data=data,
        )
        if not uses_index(items, p["ann_min_items"]):
            return estimate
        graph = index_bytes(items, dim)
        step = min(score_users(items), p["score_batch_size"])
        score = {
            "weights, 4 x parameters": n_params * FLOAT32,
            "network outputs of a block, 3 x 4 x score_batch_size x items": SCORE_COPIES
            * dense_bytes(step, items),
            f"HNSW graph of the item vectors, {graph // items} x items": graph,
            "indexed item vectors, 4 x items x dim": items * dim * FLOAT32,
            f"a block's candidates and their vectors, block users x {ESTIMATE_WIDTH} x "
            f"(16 + 4 x {dim})": candidate_bytes(dim),
        }
        score_bytes = sum(score.values())
        if score_bytes > estimate.train_bytes:
            dominant = f"two_tower (scoring): {max(score, key=lambda key: score[key])}"
        elif estimate.dominant.startswith("two_tower (training)"):
            dominant = estimate.dominant
        else:
            dominant = "two_tower (training): weights, optimizer state and training batches"
        return MemoryEstimate(estimate.train_bytes, score_bytes, dominant)

    # -- network -----------------------------------------------------------------
    def _mlp(self, x: Any, prefix: str, init: SeededInitializers) -> Any:
        import keras

        p = self.params
        reg = keras.regularizers.L2(p["l2"]) if p["l2"] > 0 else None
        for n, units in enumerate(p["hidden_dims"]):
            x = keras.layers.Dense(
                units,
                activation="relu",
                kernel_initializer=init.glorot(),
                kernel_regularizer=reg,
                name=f"{prefix}_hidden{n}",
            )(x)
        x = keras.layers.Dense(
            p["embedding_dim"],
            kernel_initializer=init.glorot(),
            kernel_regularizer=reg,
            name=f"{prefix}_out",
        )(x)
        return keras.layers.UnitNormalization(name=f"{prefix}_unit")(x)

    def _towers(self) -> tuple[Any, Any]:
        import keras
        from keras import ops

        n_items = self.train_matrix_.shape[1]
        dim = self.params["embedding_dim"]
        init = SeededInitializers(self.params["seed"])
        history = keras.Input(shape=(n_items,), name="history")
        bag = history / ops.maximum(ops.sum(history, axis=-1, keepdims=True), 1.0)
        bag = keras.layers.Dense(dim, kernel_initializer=init.glorot(), name="user_bag")(bag)
        user_tower = keras.Model(history, self._mlp(bag, "user", init), name="user_tower")

        item = keras.Input(shape=(), dtype="int32", name="item")
        keep = keras.Input(shape=(), name="keep")
        ids = keras.layers.Embedding(
            n_items, dim, embeddings_initializer=init.uniform(), name="item_id_embedding"
        )(item)
        x = ids * ops.expand_dims(keep, -1)
        if self.item_features_.shape[1]:
            content = keras.layers.Embedding(
                n_items,
                self.item_features_.shape[1],
                embeddings_initializer="zeros",  # replaced by the features below
                trainable=False,
                name="item_features",
            )
            x = keras.layers.Concatenate(name="id_and_content")([x, content(item)])
            content.embeddings.assign(self.item_features_)
        item_tower = keras.Model(
            {"item": item, "keep": keep}, self._mlp(x, "item", init), name="item_tower"
        )
        return user_tower, item_tower

    def _build_network(self) -> Any:
        import keras
        from keras import ops

        user_tower, item_tower = self._towers()
        n_items = self.train_matrix_.shape[1]
        history = keras.Input(shape=(n_items,), name="history")
        item = keras.Input(shape=(), dtype="int32", name="item")
        keep = keras.Input(shape=(), name="keep")
        users = user_tower(history)
        positives = item_tower({"item": item, "keep": keep})
        temperature = self.params["temperature"]
        if self.params["loss"] == "softmax":
            log_q = keras.Input(shape=(), name="log_q")
            out = _in_batch_logits(temperature)([users, positives, item, log_q])
            inputs = {"history": history, "item": item, "keep": keep, "log_q": log_q}
        elif self.params["loss"] == "bpr":
            negative = keras.Input(shape=(), dtype="int32", name="negative")
            negative_keep = keras.Input(shape=(), name="negative_keep")
            negatives = item_tower({"item": negative, "keep": negative_keep})
            out = ops.sum(users * (positives - negatives), axis=-1) / temperature
            inputs = {
                "history": history,
                "item": item,
                "keep": keep,
                "negative": negative,
                "negative_keep": negative_keep,
            }
        else:
            raise ValueError(
                f"two_tower: loss must be 'softmax' or 'bpr', got {self.params['loss']!r}"
            )
        return keras.Model(inputs, out, name="two_tower")

    def _loss(self) -> Any:
        import keras

        if self.params["loss"] == "bpr":
            return bpr_loss
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    # -- fitting -----------------------------------------------------------------
    def _fit(
        self,
        matrix: sp.csr_matrix,
        item_features: np.ndarray | None = None,
        validation: tuple[np.ndarray, sp.csr_matrix] | None = None,
    ) -> None:
        n_items = matrix.shape[1]
        self.item_features_ = (
            np.zeros((n_items, 0), dtype=np.float32) if item_features is None else item_features
        )
        binary = (matrix > 0).astype(np.float32).tocsr()
        pairs = binary.tocoo()
        pair_users, pair_items = pairs.row.astype(np.int64), pairs.col.astype(np.int32)
        counts = np.bincount(pair_items, minlength=n_items)
        log_q = np.log(np.maximum(counts, 1) / len(pair_items)).astype(np.float32)
        if not self.params["logq_correction"]:
            log_q[:] = 0.0
        rng = np.random.default_rng(self.params["seed"] + 1)
        bpr = self.params["loss"] == "bpr"

        def batch(rows: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
            users, items = pair_users[rows], pair_items[rows]
            history = binary[users].toarray()
            history[np.arange(len(rows)), items] = 0.0  # predict the item from the rest
            inputs = {"history": history, "item": items, "keep": self._keep(rng, len(rows))}
            if bpr:
                inputs["negative"] = rng.integers(n_items, size=len(rows)).astype(np.int32)
                inputs["negative_keep"] = self._keep(rng, len(rows))
                return inputs, np.zeros(len(rows), dtype=np.float32)
            inputs["log_q"] = log_q[items]
            return inputs, np.arange(len(rows), dtype=np.int32)

        data = shuffled_batches(
            len(pair_items), self.params["batch_size"], self.params["seed"], batch
        )
        self._train(data, validation)
        self._index_items()

    def _keep(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """1 where an item's id embedding is used, 0 where it is dropped (``id_dropout``)."""
        if self.params["id_dropout"] <= 0:
            return np.ones(n, dtype=np.float32)
        return np.asarray(rng.random(n) >= self.params["id_dropout"], dtype=np.float32)

    # -- scoring -----------------------------------------------------------------
    def item_vectors(self) -> np.ndarray:
        """Unit item vectors (n_items x dim); items without training interactions are
        represented by their content features only."""
        n_items = self.train_matrix_.shape[1]
        warm = np.asarray((self.train_matrix_ > 0).sum(axis=0)).ravel() > 0
        tower = self.network_.get_layer("item_tower")
        items = {"item": np.arange(n_items, dtype=np.int32), "keep": warm.astype(np.float32)}
        return self._predict(tower, items)

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        binary = (history > 0).astype(np.float32)
        items = self.item_vectors()
        tower = self.network_.get_layer("user_tower")
        step = self.params["score_batch_size"]
        out = np.empty((len(users), items.shape[0]), dtype=np.float32)
        for start in range(0, len(users), step):
            user_vecs = self._predict(tower, binary[start : start + step].toarray())
            out[start : start + step] = user_vecs @ items.T
        return out

    def index_vectors(self) -> np.ndarray:
        return self.item_vectors()

    def query_vectors(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        """The user tower's output for each history row, ``score_batch_size`` rows at once."""
        binary = (history > 0).astype(np.float32)
        tower = self.network_.get_layer("user_tower")
        step = self.params["score_batch_size"]
        parts = [
            self._predict(tower, binary[start : start + step].toarray())
            for start in range(0, len(users), step)
        ]
        dim = self.params["embedding_dim"]
        return np.vstack(parts) if parts else np.zeros((0, dim), dtype=np.float32)

    # -- persistence -------------------------------------------------------------
    def _save_state(self, directory: Path) -> None:
        np.save(directory / "item_features.npy", self.item_features_)
        super()._save_state(directory)
        self._save_index(directory)

    def _load_state(self, directory: Path) -> None:
        self.item_features_ = np.load(directory / "item_features.npy")
        super()._load_state(directory)
        self._load_index(directory)
