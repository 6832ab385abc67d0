"""GRU4Rec (Hidasi et al., "Session-based Recommendations with Recurrent Neural
Networks", ICLR 2016), for users' histories instead of sessions.

item embedding -> GRU (or LSTM, ``cell``) -> dropout -> full softmax over items.
Each user's sequence is cut into consecutive windows of ``max_len`` steps and the
network predicts the next item at every step of a window (GRU4Rec's
session-parallel training applied to fixed windows: every interaction after a
user's first is a target exactly once). The loss is the full softmax
cross-entropy (the paper samples negatives; with a few thousand items the full
softmax is affordable and the better objective). Scoring feeds the user's last
``max_len`` items and ranks items by the logits after the last one.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from models.base import ModelSettings
from models.inputs import ItemSequences
from models.keras_base import BatchSize, Dropout, dense_params, shuffled_batches
from models.memory import DataShape, MemoryEstimate
from models.sequential import (
    SequenceRecommender,
    SequenceSettings,
    left_padded,
    sequence_memory,
    sequence_windows,
    window_bytes,
)
from models.width import network_width


class GRU4RecSettings(SequenceSettings):
    """A ``cell`` ("gru" or "lstm") of ``hidden_dim`` units over ``embedding_dim``-d item
    embeddings of the last ``max_len`` items."""

    cell: Literal["gru", "lstm"] = "gru"
    embedding_dim: int = Field(64, ge=4)
    hidden_dim: int = Field(128, ge=4)
    max_len: int = Field(50, ge=2)
    dropout: Dropout = 0.2
    batch_size: BatchSize = 64


class GRU4Rec(SequenceRecommender):
    """Recurrent next-item model over each user's time-ordered history."""

    name: ClassVar[str] = "gru4rec"
    personalized: ClassVar[bool] = True
    settings_class: ClassVar[type[ModelSettings]] = GRU4RecSettings

    @classmethod
    def memory_estimate(cls, shape: DataShape, **params: Any) -> MemoryEstimate:
        """Item embeddings, the recurrent cell and a hidden x items output; a batch's
        logits are batch x max_len x items (the next item at every position)."""
        p = cls.settings(**params).model_dump()
        emb, hidden, length = p["embedding_dim"], p["hidden_dim"], p["max_len"]
        items = network_width(shape.items, p["max_items"])
        gates = 3 if p["cell"] == "gru" else 4
        n_params = (
            (items + 1) * emb
            + gates * (emb * hidden + hidden * hidden + 2 * hidden)
            + dense_params(hidden, items)
        )
        return sequence_memory(
            "gru4rec",
            shape,
            p,
            n_params,
            batch_cells=p["batch_size"] * length * items,
            examples=window_bytes(shape, length, length),
            output_width=items,
        )

    def _build_network(self) -> Any:
        import keras

        p = self.params
        n_items, seed = self.network_items, p["seed"]
        rnn_class = keras.layers.GRU if p["cell"] == "gru" else keras.layers.LSTM
        items = keras.Input(shape=(p["max_len"],), dtype="int32", name="items")
        x = keras.layers.Embedding(
            n_items + 1,
            p["embedding_dim"],
            mask_zero=True,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=0.05, seed=seed),
            name="item_embedding",
        )(items)
        states = rnn_class(
            p["hidden_dim"],
            return_sequences=True,
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 1),
            recurrent_initializer=keras.initializers.Orthogonal(seed=seed + 2),
            name="rnn",
        )(x)
        dropout = keras.layers.Dropout(p["dropout"], seed=seed + 3, name="dropout")
        output = keras.layers.Dense(
            n_items,
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 4),
            name="item_logits",
        )
        # Scoring only needs the logits after the last step; same layers, same weights.
        self._scorer = keras.Model(items, output(dropout(states[:, -1, :])), name="gru4rec_last")
        return keras.Model(items, output(dropout(states)), name="gru4rec")

    def _loss(self) -> Any:
        import keras

        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)

    def _training_data(self, sequences: list[np.ndarray]) -> Any:
        x, y = sequence_windows(sequences, self.params["max_len"])
        return shuffled_batches(
            len(x), self.params["batch_size"], self.params["seed"], lambda r: (x[r], y[r])
        )

    def _score_sequences(self, users: np.ndarray, sequences: ItemSequences) -> np.ndarray:
        items = left_padded(sequences, self.params["max_len"])
        return self._batched(self._scorer, items)
