"""SASRec (Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018).

item embedding (x sqrt(d)) + learned position embedding -> dropout -> ``n_blocks``
Transformer blocks -> layer norm -> one logit per item at every position. A block
is pre-norm, as in the paper's code: layer norm -> multi-head self-attention
(Keras ``MultiHeadAttention``) with a causal mask (position t sees positions <= t)
and a padding mask (left padding is never attended to) -> residual; layer norm ->
point-wise feed-forward (two dense layers, ReLU, dropout) -> residual. Padded
positions are zeroed after every block.

The logits are the final states times the item embeddings (plus an item bias),
the input and output embeddings shared as in the paper (``tied``; otherwise a
separate dense output layer).

Training: each user's sequence is cut into windows of ``max_len`` items ending every
``stride`` items (the last one at the user's last item) and the network predicts the
next item at the last ``stride`` positions of a window (every position of a user's
oldest window), so every target counts once per epoch and, away from the start of the
sequence, sees at least ``max_len - stride`` earlier items. ``stride >= max_len``
(or ``None``) gives consecutive windows, as :class:`models.gru4rec.GRU4Rec`; a shorter
stride is closer to the paper, where every position sees its whole past. The loss is
the full softmax cross-entropy (the paper samples one negative per position with
binary cross-entropy; with a few thousand items the full softmax is affordable and
the better objective, as in RecBole's default); the optimiser Adam with beta_2 = 0.98,
as in the paper. Scoring feeds the user's last ``max_len`` items and ranks items by
the logits after the last one.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field, model_validator

from models.base import ModelSettings
from models.inputs import ItemSequences
from models.keras_base import (
    BatchSize,
    Dropout,
    Epochs,
    Patience,
    SeededInitializers,
    dense_params,
    shuffled_batches,
)
from models.memory import DataShape, MemoryEstimate
from models.sequential import (
    SequenceRecommender,
    SequenceSettings,
    left_padded,
    sequence_memory,
    window_bytes,
)
from models.width import network_width


def strided_windows(
    sequences: list[np.ndarray], length: int, stride: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs, targets)``, both (n_windows x length): windows of ``length`` items
    ending at each sequence's last item, then every ``stride`` items back. Inputs are
    ``item + 1`` left-padded with 0; targets the next item at the last ``stride``
    positions of a window (all positions of the window that starts the sequence), -1
    elsewhere. Every position t >= 1 of a sequence is a target exactly once."""
    inputs, targets = [], []
    for seq in sequences:
        end = len(seq)
        while end > 1:
            start = max(1, end - length)
            target = np.asarray(seq[start:end], dtype=np.int64).copy()
            if start > 1:
                target[: max(0, len(target) - stride)] = -1
            inputs.append(seq[start - 1 : end - 1])
            targets.append(target)
            if start == 1:
                break
            end -= stride
    x = left_padded(inputs, length)
    y = np.full((len(targets), length), -1, dtype=np.int64)
    for row, target in enumerate(targets):
        y[row, length - len(target) :] = target
    return x, y


def _position_layer(max_len: int, dim: int, initializer: Any) -> Any:
    """A Keras layer adding a learned position embedding to ``(batch, max_len, dim)``."""
    import keras
    from keras import ops

    class LearnedPositions(keras.layers.Layer):
        def build(self, input_shape: Any) -> None:
            self.positions = self.add_weight(
                shape=(max_len, dim), initializer=initializer, name="positions"
            )

        def call(self, x: Any) -> Any:
            return x + ops.expand_dims(ops.convert_to_tensor(self.positions), 0)

        def compute_output_shape(self, input_shape: Any) -> Any:
            return input_shape

    return LearnedPositions(name="positions")


def _tied_logits_layer(embedding: Any) -> Any:
    """A Keras layer scoring states against the item embeddings (row 0, padding, left
    out) plus a learned item bias: the paper's shared input/output item embeddings."""
    import keras
    from keras import ops

    class TiedLogits(keras.layers.Layer):
        def build(self, input_shape: Any) -> None:
            self.bias = self.add_weight(
                shape=(embedding.input_dim - 1,), initializer="zeros", name="item_bias"
            )

        def call(self, states: Any) -> Any:
            items = ops.convert_to_tensor(embedding.embeddings)[1:]
            return ops.matmul(states, ops.transpose(items)) + self.bias

        def compute_output_shape(self, input_shape: Any) -> Any:
            return (*input_shape[:-1], embedding.input_dim - 1)

    return TiedLogits(name="item_logits")


class SASRecSettings(SequenceSettings):
    """``n_blocks`` blocks of ``n_heads``-head attention over the last ``max_len`` items'
    ``embedding_dim``-d embeddings; ``tied``: the output shares the item embeddings.
    Training windows end every ``stride`` items (None: consecutive windows of
    ``max_len``)."""

    embedding_dim: int = Field(64, ge=4)
    max_len: int = Field(20, ge=2)
    n_blocks: int = Field(2, ge=1)
    n_heads: int = Field(1, ge=1)
    dropout: Dropout = 0.3
    tied: bool = True
    stride: int | None = Field(5, ge=1)
    epochs: Epochs = 60
    batch_size: BatchSize = 64
    patience: Patience = 8

    @model_validator(mode="after")
    def _heads_divide_the_embedding(self) -> SASRecSettings:
        if self.embedding_dim % self.n_heads:
            raise ValueError(
                f"embedding_dim ({self.embedding_dim}) must be a multiple of n_heads "
                f"({self.n_heads})"
            )
        return self


class SASRec(SequenceRecommender):
    """Self-attentive next-item model over each user's time-ordered history."""

    name: ClassVar[str] = "sasrec"
    personalized: ClassVar[bool] = True
    settings_class: ClassVar[type[ModelSettings]] = SASRecSettings

    @classmethod
    def memory_estimate(cls, shape: DataShape, **params: Any) -> MemoryEstimate:
        """Item and position embeddings, ``n_blocks`` attention and feed-forward blocks
        and the output (the item embeddings again plus a bias when ``tied``); a batch's
        logits are batch x max_len x items (the next item at every position)."""
        p = cls.settings(**params).model_dump()
        d, length = p["embedding_dim"], p["max_len"]
        items = network_width(shape.items, p["max_items"])
        block = 4 * dense_params(d, d) + 2 * dense_params(d, d) + 4 * d
        output = items if p["tied"] else dense_params(d, items)
        n_params = (items + 1) * d + length * d + p["n_blocks"] * block + 2 * d + output
        stride = length if p["stride"] is None else min(p["stride"], length)
        return sequence_memory(
            "sasrec",
            shape,
            p,
            n_params,
            batch_cells=p["batch_size"] * length * items,
            examples=window_bytes(shape, length, stride),
            output_width=items,
        )

    def _build_network(self) -> Any:
        import keras
        from keras import ops

        p = self.params
        d, length, rate = p["embedding_dim"], p["max_len"], p["dropout"]
        n_items = self.network_items
        init = SeededInitializers(p["seed"])
        items = keras.Input(shape=(length,), dtype="int32", name="items")
        keep = ops.expand_dims(ops.cast(ops.not_equal(items, 0), "float32"), -1)
        # key mask: attend only to real items (the causal mask is added by the layer)
        attend = ops.expand_dims(ops.not_equal(items, 0), 1)
        embedding = keras.layers.Embedding(
            n_items + 1, d, embeddings_initializer=init.uniform(), name="item_embedding"
        )
        x = embedding(items)
        x = _position_layer(length, d, init.uniform())(x * float(np.sqrt(d)))
        x = keras.layers.Dropout(rate, seed=init.next_seed(), name="embedding_dropout")(x) * keep
        for block in range(p["n_blocks"]):
            h = keras.layers.LayerNormalization(epsilon=1e-8, name=f"attention_norm_{block}")(x)
            h = keras.layers.MultiHeadAttention(
                p["n_heads"],
                d // p["n_heads"],
                dropout=rate,
                seed=init.next_seed(),
                kernel_initializer=init.glorot(),
                name=f"attention_{block}",
            )(h, h, attention_mask=attend, use_causal_mask=True)
            x = x + h
            h = keras.layers.LayerNormalization(epsilon=1e-8, name=f"ffn_norm_{block}")(x)
            h = keras.layers.Dense(
                d, activation="relu", kernel_initializer=init.glorot(), name=f"ffn_{block}_1"
            )(h)
            h = keras.layers.Dropout(rate, seed=init.next_seed(), name=f"ffn_dropout_{block}_1")(h)
            h = keras.layers.Dense(d, kernel_initializer=init.glorot(), name=f"ffn_{block}_2")(h)
            h = keras.layers.Dropout(rate, seed=init.next_seed(), name=f"ffn_dropout_{block}_2")(h)
            x = (x + h) * keep
        states = keras.layers.LayerNormalization(epsilon=1e-8, name="final_norm")(x)
        if p["tied"]:
            output = _tied_logits_layer(embedding)
        else:
            output = keras.layers.Dense(
                n_items, kernel_initializer=init.glorot(), name="item_logits"
            )
        # Scoring only needs the logits after the last position; same layers, same weights.
        self._scorer = keras.Model(items, output(states[:, -1, :]), name="sasrec_last")
        return keras.Model(items, output(states), name="sasrec")

    def _new_network(self, for_training: bool = True) -> Any:
        """As every Keras model, but Adam with beta_2 = 0.98 (the paper's setting)."""
        import keras

        network = super()._new_network(for_training=False)
        if for_training:
            network.compile(
                optimizer=keras.optimizers.Adam(
                    learning_rate=self.params["learning_rate"], beta_2=0.98
                ),
                loss=self._loss(),
                jit_compile=False,
            )
            network.optimizer.build(network.trainable_variables)
        return network

    def _loss(self) -> Any:
        import keras

        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)

    def _training_data(self, sequences: list[np.ndarray]) -> Any:
        length = self.params["max_len"]
        stride = length if self.params["stride"] is None else min(self.params["stride"], length)
        x, y = strided_windows(sequences, length, stride)
        return shuffled_batches(
            len(x), self.params["batch_size"], self.params["seed"], lambda r: (x[r], y[r])
        )

    def _score_sequences(self, users: np.ndarray, sequences: ItemSequences) -> np.ndarray:
        items = left_padded(sequences, self.params["max_len"])
        return self._batched(self._scorer, items)
