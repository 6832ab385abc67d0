"""Mult-DAE (Liang et al., "Variational Autoencoders for Collaborative Filtering", WWW 2018).

A user's binarised history is L2-normalised, corrupted by dropout, encoded by one
tanh layer and decoded to one logit per item; the loss is the multinomial
negative log-likelihood of the history under the softmax of the logits. At
scoring time the (uncorrupted) history goes through the same network, so users
who gained interactions after training are folded in without retraining.

:class:`AutoencoderRecommender` holds what Mult-DAE and Mult-VAE
(:mod:`models.mult_vae`) share: the loss, the batches of histories and the
batched scoring. Keras 3; TensorFlow is imported only when a model is built.

A wide catalog: the network covers its ``max_items`` head items (:mod:`models.width`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from models.base import ModelSettings
from models.inputs import ItemSequences
from models.keras_base import (
    Dropout,
    KerasRecommender,
    KerasTrainingSettings,
    dense_params,
    keras_memory,
    shuffled_batches,
)
from models.memory import DataShape, MemoryEstimate
from models.width import MAX_ITEMS, MaxItems, RestrictedOutput, network_width

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
    output are ``network_width`` items wide, so one batch is batch_size x that many dense
    cells; it keeps two binary CSR copies of the training matrix (all users, the active
    ones) besides the float32 one ``fit`` makes. Its scores are still a block x items
    matrix (-inf outside the network's items)."""
    width = network_width(shape.items, params["max_items"])
    return keras_memory(
        model,
        shape,
        params,
        n_params,
        batch_cells=params["batch_size"] * width,
        activation_copies=AUTOENCODER_ACTIVATIONS,
        data={"CSR copies of the training matrix, 3 x CSR": 3 * shape.csr_bytes()},
        output_width=width,
    )


class AutoencoderSettings(KerasTrainingSettings):
    """What every autoencoder over the user's item set takes besides training:
    ``max_items``, the width of its input and output (the items with the most training
    interactions, :mod:`models.width`; 0: every item)."""

    max_items: MaxItems = MAX_ITEMS


class AutoencoderRecommender(RestrictedOutput, KerasRecommender):
    """Adapter for autoencoders over the user's item set: batches, loss, batched scoring,
    over the network's head items on a wide catalog (:mod:`models.width`)."""

    fit_inputs: ClassVar[tuple[str, ...]] = ("validation",)

    def _loss(self) -> Any:
        return multinomial_nll

    def _fit(
        self, matrix: sp.csr_matrix, validation: tuple[np.ndarray, sp.csr_matrix] | None = None
    ) -> None:
        binary = (matrix > 0).astype(np.float32).tocsr()
        self._choose_head(binary)
        binary = self._head_columns(binary)
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
        return self._widened(self._network_scores(history))

    def _score_columns(
        self, users: np.ndarray, history: sp.csr_matrix, sequences: ItemSequences | None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        if self.output_items_ is None:
            return None
        return self._head_columns_of(self._network_scores(history))

    def _network_scores(self, history: sp.csr_matrix) -> np.ndarray:
        """The network's scores (rows x network items) of the histories."""
        binary = self._head_columns(sp.csr_matrix((history > 0).astype(np.float32)))
        step = self.params["score_batch_size"]
        out = np.empty((binary.shape[0], self.network_items), dtype=np.float32)
        for start in range(0, binary.shape[0], step):
            out[start : start + step] = self._predict(
                self.network_, binary[start : start + step].toarray()
            )
        return out

    def _save_state(self, directory: Path) -> None:
        super()._save_state(directory)
        self._save_head(directory)

    def _load_state(self, directory: Path) -> None:
        self._load_head(directory)  # the network is built at its width
        super()._load_state(directory)


class MultDAESettings(AutoencoderSettings):
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
        hidden, width = p["hidden_dim"], network_width(shape.items, p["max_items"])
        n_params = dense_params(width, hidden) + dense_params(hidden, width)
        return autoencoder_memory("mult_dae", shape, p, n_params)

    def _build_network(self) -> Any:
        p = self.params
        return build_network(self.network_items, p["hidden_dim"], p["dropout"], p["l2"], p["seed"])
