"""Mult-DAE (Liang et al., "Variational Autoencoders for Collaborative Filtering", WWW 2018).

A user's binarised history is L2-normalised, corrupted by dropout, encoded by one
tanh layer and decoded to one logit per item; the loss is the multinomial
negative log-likelihood of the history under the softmax of the logits. At
scoring time the (uncorrupted) history goes through the same network, so users
who gained interactions after training are folded in without retraining.

:class:`AutoencoderRecommender` holds what Mult-DAE and Mult-VAE
(:mod:`models.mult_vae`) share: the loss, the batches of histories and the
batched scoring. Keras 3; TensorFlow is imported only when a model is built.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from models.base import ModelSettings
from models.keras_base import (
    Dropout,
    KerasRecommender,
    KerasTrainingSettings,
    dense_params,
    keras_memory,
    shuffled_batches,
)
from models.memory import DataShape, MemoryEstimate

# Liang et al.'s Mult-DAE: 600 tanh units, input dropout 0.5, L2 0.01 on the weights, batch 500
PAPER_SETTINGS = {
    "hidden_dim": 600,
    "dropout": 0.5,
    "l2": 1e-2,
    "batch_size": 500,
    "learning_rate": 3e-3,
    "epochs": 600,
    "patience": 20,
}


def multinomial_nll(y_true: Any, logits: Any) -> Any:
    """Per-example multinomial negative log-likelihood: -sum_i x_i log softmax(z)_i."""
    from keras import ops

    return -ops.sum(ops.log_softmax(logits, axis=-1) * y_true, axis=-1)


def dense(units: int, seed: int, l2: float, name: str, activation: str | None = None) -> Any:
    """A Glorot-initialised, optionally L2-regularised dense layer."""
    import keras

    return keras.layers.Dense(
        units,
        activation=activation,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        kernel_regularizer=keras.regularizers.L2(l2) if l2 > 0 else None,
        name=name,
    )


def corrupted_input(n_items: int, dropout: float, seed: int) -> tuple[Any, Any]:
    """The history input and its L2-normalised, dropout-corrupted version."""
    import keras

    inputs = keras.Input(shape=(n_items,), name="history")
    x = keras.layers.UnitNormalization(name="l2_normalize")(inputs)
    return inputs, keras.layers.Dropout(dropout, seed=seed, name="input_dropout")(x)


def build_network(n_items: int, hidden_dim: int, dropout: float, l2: float, seed: int) -> Any:
    """The Mult-DAE autoencoder as a functional Keras model mapping histories to item logits."""
    import keras

    inputs, x = corrupted_input(n_items, dropout, seed)
    h = dense(hidden_dim, seed, l2, "encoder", activation="tanh")(x)
    logits = dense(n_items, seed + 1, l2, "decoder")(h)
    return keras.Model(inputs, logits, name="mult_dae")


#: float32 batch x n_items arrays alive in one autoencoder training step: the dense batch
#: (numpy and its tensor), the normalised and the corrupted input with its dropout mask,
#: the logits, the log-softmax and its product with the target, and the gradients
#: flowing back through them
AUTOENCODER_ACTIVATIONS = 10


def autoencoder_memory(
    model: str, shape: DataShape, params: dict[str, Any], n_params: int
) -> MemoryEstimate:
    """An autoencoder's memory (:func:`models.keras_base.keras_memory`): its input and
    output are n_items wide, so one batch is batch_size x n_items dense cells; it keeps
    two binary CSR copies of the training matrix (all users, the active ones) besides the
    float32 one ``fit`` makes."""
    return keras_memory(
        model,
        shape,
        params,
        n_params,
        batch_cells=params["batch_size"] * shape.items,
        activation_copies=AUTOENCODER_ACTIVATIONS,
        data={"CSR copies of the training matrix, 3 x CSR": 3 * shape.csr_bytes()},
    )


class AutoencoderRecommender(KerasRecommender):
    """Adapter for autoencoders over the user's item set: batches, loss, batched scoring."""

    fit_inputs: ClassVar[tuple[str, ...]] = ("validation",)

    def _loss(self) -> Any:
        return multinomial_nll

    def _fit(
        self, matrix: sp.csr_matrix, validation: tuple[np.ndarray, sp.csr_matrix] | None = None
    ) -> None:
        binary = (matrix > 0).astype(np.float32).tocsr()
        # Users with no training history carry no signal for the autoencoder.
        active = binary[np.flatnonzero(np.diff(binary.indptr) > 0)]

        def batch(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            x = active[rows].toarray()
            return x, x

        data = shuffled_batches(
            active.shape[0], self.params["batch_size"], self.params["seed"], batch
        )
        self._train(data, validation)

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        binary = (history > 0).astype(np.float32)
        step = self.params["score_batch_size"]
        out = np.empty((len(users), self.train_matrix_.shape[1]), dtype=np.float32)
        for start in range(0, len(users), step):
            out[start : start + step] = self._predict(
                self.network_, binary[start : start + step].toarray()
            )
        return out


class MultDAESettings(KerasTrainingSettings):
    """One hidden layer of ``hidden_dim`` tanh units after input ``dropout``; ``l2`` on the
    weights. ``lr_plateau`` (N > 0): the learning rate halves after N epochs without a
    better validation NDCG (fitted with a validation target; 0 keeps it fixed)."""

    hidden_dim: int = Field(200, ge=8)
    dropout: Dropout = 0.5
    l2: float = Field(1e-5, ge=0)
    lr_plateau: int = Field(0, ge=0)


class MultDAE(AutoencoderRecommender):
    """Mult-DAE: one tanh hidden layer, input dropout, multinomial likelihood."""

    name: ClassVar[str] = "mult_dae"
    personalized: ClassVar[bool] = True
    settings_class: ClassVar[type[ModelSettings]] = MultDAESettings

    @classmethod
    def memory_estimate(cls, shape: DataShape, **params: Any) -> MemoryEstimate:
        """Encoder items x hidden and decoder hidden x items weights; dominated at width
        by early stopping's dense validation scores (users x items)."""
        p = cls.settings(**params).model_dump()
        hidden = p["hidden_dim"]
        n_params = dense_params(shape.items, hidden) + dense_params(hidden, shape.items)
        return autoencoder_memory("mult_dae", shape, p, n_params)

    def _build_network(self) -> Any:
        p = self.params
        n_items = self.train_matrix_.shape[1]
        return build_network(n_items, p["hidden_dim"], p["dropout"], p["l2"], p["seed"])
