"""Caser (Tang & Wang, "Personalized Top-N Sequential Recommendation via Convolutional
Sequence Embedding", WSDM 2018).

The embeddings of a user's last ``max_len`` (the paper's L) items form an L x d
"image". Horizontal filters of heights 1..L (``n_h`` each, ReLU, max-pooled over
time) capture union- and point-level sequential patterns; ``n_v`` vertical
filters (L x 1) take weighted sums of the L embeddings. Their concatenation goes
through dropout and a dense ReLU layer, is concatenated with the user's
embedding and mapped to one logit per item.

Trained on every (previous L items, next item) pair of every sequence (the
paper's T = 1). The paper's loss is binary cross-entropy with sampled negatives;
with a few thousand items this uses the full softmax cross-entropy instead.
Users unknown to the model (index >= n_users) get a shared "unknown user" embedding.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from models.base import ModelSettings
from models.inputs import ItemSequences
from models.keras_base import (
    BatchSize,
    Dropout,
    SeededInitializers,
    dense_params,
    shuffled_batches,
)
from models.memory import INDEX, DataShape, MemoryEstimate
from models.sequential import (
    PY_OBJECT,
    SequenceRecommender,
    SequenceSettings,
    left_padded,
    next_item_examples,
    sequence_memory,
)
from models.width import network_width


class CaserSettings(SequenceSettings):
    """The last ``max_len`` (the paper's L) items' ``embedding_dim``-d embeddings under
    ``n_h`` horizontal filters of each height 1..L and ``n_v`` vertical ones; ``l2`` on
    the item and user embeddings."""

    embedding_dim: int = Field(50, ge=4)
    max_len: int = Field(5, ge=1)
    n_h: int = Field(16, ge=1)
    n_v: int = Field(4, ge=1)
    dropout: Dropout = 0.5
    l2: float = Field(1e-6, ge=0)
    batch_size: BatchSize = 256


class Caser(SequenceRecommender):
    """Convolutional sequence embedding plus a user embedding."""

    name: ClassVar[str] = "caser"
    personalized: ClassVar[bool] = True
    settings_class: ClassVar[type[ModelSettings]] = CaserSettings

    @classmethod
    def memory_estimate(cls, shape: DataShape, **params: Any) -> MemoryEstimate:
        """Item and user embeddings, the filters, and a 2 d x items output; a batch's
        logits are batch x items. Every interaction is one example, built in Python
        lists first: a user, a prefix view and a target (three objects, 3 x 120 bytes),
        then int32 arrays of the user, the max_len items and the target."""
        p = cls.settings(**params).model_dump()
        d, length = p["embedding_dim"], p["max_len"]
        items = network_width(shape.items, p["max_items"])
        filters = sum(h * d * p["n_h"] + p["n_h"] for h in range(1, length + 1))
        n_params = (
            (items + 1) * d
            + (shape.users + 1) * d
            + filters
            + dense_params(length, p["n_v"])
            + dense_params(p["n_h"] * length + p["n_v"] * d, d)
            + dense_params(2 * d, items)
        )
        examples = shape.interactions * (3 * PY_OBJECT + INDEX * (length + 2))
        return sequence_memory(
            "caser",
            shape,
            p,
            n_params,
            batch_cells=p["batch_size"] * items,
            examples={"training examples, interactions x (360 + 4 x (max_len + 2))": examples},
            output_width=items,
        )

    def _build_network(self) -> Any:
        import keras

        p = self.params
        n_users, n_items = self.train_matrix_.shape[0], self.network_items
        d, length, seed = p["embedding_dim"], p["max_len"], p["seed"]
        reg = keras.regularizers.L2(p["l2"]) if p["l2"] > 0 else None

        def init(offset: int) -> Any:
            return keras.initializers.GlorotUniform(seed=seed + offset)

        embedding_init = SeededInitializers(seed + length + 1)  # past the kernels' seeds

        items = keras.Input(shape=(length,), dtype="int32", name="items")
        user = keras.Input(shape=(), dtype="int32", name="user")
        image = keras.layers.Embedding(
            n_items + 1,
            d,
            embeddings_initializer=embedding_init.uniform(),
            embeddings_regularizer=reg,
            name="item_embedding",
        )(items)
        horizontal = [
            keras.layers.GlobalMaxPooling1D(name=f"pool_h{h}")(
                keras.layers.Conv1D(
                    p["n_h"], h, activation="relu", kernel_initializer=init(h), name=f"conv_h{h}"
                )(image)
            )
            for h in range(1, length + 1)
        ]
        vertical = keras.layers.Flatten(name="flatten_v")(
            keras.layers.Dense(p["n_v"], kernel_initializer=init(0), name="conv_v")(
                keras.layers.Permute((2, 1), name="time_last")(image)
            )
        )
        z = keras.layers.Concatenate(name="conv_features")([*horizontal, vertical])
        z = keras.layers.Dropout(p["dropout"], seed=seed, name="dropout")(z)
        z = keras.layers.Dense(d, activation="relu", kernel_initializer=init(-1), name="fc")(z)
        user_vec = keras.layers.Embedding(
            n_users + 1,
            d,
            embeddings_initializer=embedding_init.uniform(),
            embeddings_regularizer=reg,
            name="user_embedding",
        )(user)
        both = keras.layers.Concatenate(name="sequence_and_user")([z, user_vec])
        logits = keras.layers.Dense(n_items, kernel_initializer=init(-2), name="item_logits")(both)
        return keras.Model([items, user], logits, name="caser")

    def _loss(self) -> Any:
        import keras

        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def _training_data(self, sequences: list[np.ndarray]) -> Any:
        users, x, y = next_item_examples(sequences, self.params["max_len"])
        users = users + 1  # 0 is the "unknown user" row

        def batch(rows: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
            return (x[rows], users[rows]), y[rows]

        return shuffled_batches(len(y), self.params["batch_size"], self.params["seed"], batch)

    def _score_sequences(self, users: np.ndarray, sequences: ItemSequences) -> np.ndarray:
        known = users < self.train_matrix_.shape[0]
        user_rows = np.where(known, users + 1, 0).astype(np.int32)
        items = left_padded(sequences, self.params["max_len"])
        return self._batched(self.network_, items, user_rows)
